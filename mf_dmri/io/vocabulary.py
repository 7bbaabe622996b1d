"""One vocabulary for every front end: the names and units of TOML keys, CLI flags,
table columns and Python keywords (the table is docs/vocabulary.md).

A quantity has one Python name, used in SI by the library (``pulse_duration`` [s]), and a
file key that carries its unit as a suffix (``pulse_duration_ms``).  TOML files accept any
unit of the quantity's family (``radius_um``, ``radius_nm``, ...); CLI flags and the
columns mf_dmri writes use the canonical unit (the first of the family).  Self-describing
containers (HDF5) store SI values under the Python name with a ``unit`` attribute.

Old key names stay accepted for one release: :func:`resolve_alias` maps them to the new
ones and warns with :class:`MfDmriDeprecationWarning`.  Errors raise
:class:`VocabularyError`, which names the key exactly as the user wrote it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from mf_dmri import units

#: Accepted unit suffixes per quantity and their factor to SI; the first is canonical.
UNITS: dict[str, dict[str, float]] = {
    "length": {"um": units.um, "nm": units.nm, "mm": units.mm, "m": units.m},
    "time": {"ms": units.ms, "us": units.us, "s": units.s},
    "diffusivity": {
        "um2_per_ms": units.um2_per_ms,
        "mm2_per_s": units.mm2_per_s,
        "m2_per_s": 1.0,
    },
    "bvalue": {"s_per_mm2": units.s_per_mm2, "s_per_m2": 1.0, "ms_per_um2": 1e9},
    "gradient": {"mT_per_m": units.mT_per_m, "T_per_m": units.T_per_m},
    "permeability": {"um_per_ms": units.um_per_ms, "um_per_s": 1e-6, "m_per_s": 1.0},
    "eigenvalue": {"per_um2": 1e12, "per_m2": 1.0},
    "none": {},
}

#: SI unit of each quantity (for docstrings, HDF5 attributes and messages).
SI_UNITS = {
    "length": "m",
    "time": "s",
    "diffusivity": "m^2/s",
    "bvalue": "s/m^2",
    "gradient": "T/m",
    "permeability": "m/s",
    "eigenvalue": "1/m^2",
    "none": "-",
}

#: Every named quantity of the front ends: Python name -> quantity.
QUANTITIES: dict[str, str] = {
    # geometry
    "radius": "length",
    "length": "length",
    "width": "length",
    "length_scale": "length",
    "max_eigenvalue": "eigenvalue",
    # tissue
    "diffusivity": "diffusivity",
    "t2": "time",
    "spin_density": "none",
    "volume_fraction": "none",
    "signal_fraction": "none",
    "permeability": "permeability",
    "surface_relaxivity": "permeability",
    # acquisition
    "pulse_duration": "time",
    "pulse_separation": "time",
    "echo_time": "time",
    "time_step": "time",
    "sample_duration": "time",
    "num_periods": "none",
    "b": "bvalue",
    "gradient": "gradient",
    "direction_x": "none",
    "direction_y": "none",
    "direction_z": "none",
    # fitted parameters
    "intra_diffusivity": "diffusivity",
    "extra_diffusivity": "diffusivity",
    "extra_parallel_diffusivity": "diffusivity",
    "extra_perpendicular_diffusivity": "diffusivity",
    "mean_radius": "length",
    "radius_shape": "none",
    "intra_fraction": "none",
    "axis_tilt_1": "none",
    "axis_tilt_2": "none",
    "s0": "none",
    "sigma": "none",
    # signals
    "signal": "none",
    "signal_real": "none",
    "signal_imag": "none",
    "signal_error_bar": "none",
}

#: Deprecated TOML key -> current key (accepted with a MfDmriDeprecationWarning).
ALIASES: dict[str, str] = {
    "delta_ms": "pulse_duration_ms",
    "Delta_ms": "pulse_separation_ms",
    "periods": "num_periods",
    "kappa_um_per_ms": "permeability_um_per_ms",
    "kappa_m_per_s": "permeability_m_per_s",
}

#: Deprecated column name -> current column (tables read by ``mf-dmri fit``).
COLUMN_ALIASES: dict[str, str] = {
    "b": "b_s_per_mm2",
    "gx": "direction_x",
    "gy": "direction_y",
    "gz": "direction_z",
    "delta_ms": "pulse_duration_ms",
    "Delta_ms": "pulse_separation_ms",
    "signal_abs": "signal",
}


def file_length_unit(value) -> float:
    """A mesh file's length unit [m] from a config value: a name of ``UNITS["length"]`` or
    a positive number of metres per file unit (as ``mf-dmri mesh ... --unit``; navis'
    voxels: 8e-9).  Raises ValueError naming both forms; never guessed."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and math.isfinite(value) and value > 0:
        return float(value)
    if number or value not in UNITS["length"]:
        raise ValueError(
            f"unit must be one of {sorted(UNITS['length'])} or a positive number of metres "
            f"per file unit (e.g. 8e-9 for navis' 8 nm voxels): the mesh file's length "
            f"unit, never guessed; got {value!r}"
        )
    return UNITS["length"][value]


class VocabularyError(ValueError):
    """A key that is unknown, lacks its unit, or has a unit of the wrong quantity.

    Attributes:
        key: the key as the user wrote it.
        where: the section or option it came from (e.g. ``[acquisition]``).
    """

    def __init__(self, message: str, key: str, where: str) -> None:
        super().__init__(message)
        self.key = key
        self.where = where


class ConfigError(ValueError):
    """A library check failed on values that came from the user's keys or flags; the
    message starts with those keys as written (``[acquisition] pulse_duration_ms``)."""

    def __init__(self, message: str, keys: tuple[str, ...], where: str) -> None:
        super().__init__(message)
        self.keys = keys
        self.where = where


@contextmanager
def naming(where: str, *keys: str) -> Iterator[None]:
    """Re-raise a library ``ValueError``/``TypeError`` raised inside the block as a
    :class:`ConfigError` that names the user's ``keys`` in ``where``."""
    try:
        yield
    except (VocabularyError, ConfigError):
        raise
    except (ValueError, TypeError) as exc:
        label = ", ".join(keys)
        raise ConfigError(f"{where} {label}: {exc}", tuple(keys), where) from exc


class MfDmriDeprecationWarning(FutureWarning):
    """An old key name was used; shown by default (FutureWarning) so that users see it."""


@dataclass(frozen=True)
class Key:
    """A resolved file key: the Python ``name``, its ``quantity``, the ``unit`` suffix
    as written ('' for dimensionless) and ``factor`` to SI."""

    name: str
    quantity: str
    unit: str
    factor: float

    @property
    def si_unit(self) -> str:
        return SI_UNITS[self.quantity]


def canonical_unit(name: str) -> str:
    """The unit suffix mf_dmri writes for quantity ``name`` ('' if dimensionless)."""
    quantity = QUANTITIES[name]
    return next(iter(UNITS[quantity]), "")


def column(name: str) -> str:
    """The column / CLI / TOML key of ``name`` in its canonical unit (``pulse_duration_ms``)."""
    unit = canonical_unit(name)
    return f"{name}_{unit}" if unit else name


def to_file_unit(name: str, value):
    """SI ``value`` of quantity ``name`` in its canonical file unit (arrays too)."""
    unit = canonical_unit(name)
    return value / UNITS[QUANTITIES[name]][unit] if unit else value


def resolve_alias(key: str, where: str, aliases: Mapping[str, str] = ALIASES) -> str:
    """``key`` itself, or its current name if it is deprecated (with a warning)."""
    if key not in aliases:
        return key
    new = aliases[key]
    warnings.warn(
        f"{where}: {key!r} is deprecated and will be removed; write {new!r} "
        "(see docs/vocabulary.md)",
        MfDmriDeprecationWarning,
        stacklevel=3,
    )
    return new


def split_key(key: str, quantities: Mapping[str, str], where: str) -> Key:
    """Resolve a file key such as ``radius_um`` against the allowed ``quantities``
    (name -> quantity); deprecated names are translated (with a warning)."""
    written = key
    key = resolve_alias(key, where)
    candidates = [n for n in quantities if key == n or key.startswith(n + "_")]
    if not candidates:
        known = ", ".join(
            f"{n}{'_<' + q + ' unit>' if q != 'none' else ''}"
            for n, q in sorted(quantities.items())
        )
        raise VocabularyError(
            f"unknown key {written!r} in {where}; known parameters: {known}", written, where
        )
    name = max(candidates, key=len)
    quantity = quantities[name]
    accepted = UNITS[quantity]
    suffix = key[len(name) + 1 :]
    if quantity == "none":
        if suffix:
            raise VocabularyError(
                f"{where}: {name} is dimensionless, write {name!r} (not {written!r})",
                written,
                where,
            )
        return Key(name, quantity, "", 1.0)
    if not suffix:
        options = ", ".join(f"{name}_{u}" for u in accepted)
        raise VocabularyError(
            f"{where}: {name} is a {quantity} and needs a unit: write {options}",
            written,
            where,
        )
    if suffix not in accepted:
        other = [q for q, us in UNITS.items() if suffix in us]
        hint = f" ('{suffix}' is a {other[0]} unit)" if other else ""
        raise VocabularyError(
            f"{where}: {written!r} has an unknown {quantity} unit '{suffix}'{hint}; "
            f"use one of {', '.join(accepted)}",
            written,
            where,
        )
    return Key(name, quantity, suffix, accepted[suffix])
