"""The typed, validated description of a sweep (SI units throughout).

A sweep is the product  geometry points x tissue points  (the parameter table, one row
each), every row simulated for the same list of measurements (the acquisition).  The TOML
reader (``mf_dmri.io.sweep_toml``) builds these objects after converting units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from types import MappingProxyType
from typing import Any

from mf_dmri.plausibility import CHECKED, Plausibility, as_plausibility
from mf_dmri.sweep.ranges import Axis, Grid, Random, Values

#: Tissue properties a compartment takes, with their quantity.
TISSUE_PARAMETERS = {
    "diffusivity": "diffusivity",
    "t2": "time",
    "spin_density": "none",
    "volume_fraction": "none",
    "signal_fraction": "none",
    "permeability": "permeability",
    "surface_relaxivity": "permeability",
}
#: Tissue properties that only a coupled geometry takes (its compartments exchange).
COUPLING_PARAMETERS = ("permeability", "surface_relaxivity")
SEQUENCES = ("pgse", "ogse")
COMBINE = ("product", "zip")


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


def _check_axes(axes: Mapping[str, Any], where: str) -> None:
    for name, axis in axes.items():
        if not isinstance(axis, (Values, Grid, Random)):
            raise TypeError(f"{where}.{name} must be a Values, Grid or Random axis")


@dataclass(frozen=True)
class GeometrySpec:
    """One geometry family: a registered ``shape`` with numeric parameter axes [SI], fixed
    ``options``, and for file-based shapes the list of ``files`` (one geometry each)."""

    shape: str
    parameters: Mapping[str, Axis] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    combine: str = "product"

    def __post_init__(self) -> None:
        if not self.shape:
            raise ValueError("a geometry needs a shape name")
        if self.combine not in COMBINE:
            raise ValueError(f"geometry combine must be one of {COMBINE}, got {self.combine!r}")
        _check_axes(self.parameters, f"geometry[{self.shape}]")
        object.__setattr__(self, "parameters", _frozen(self.parameters))
        object.__setattr__(self, "options", _frozen(self.options))
        object.__setattr__(self, "files", tuple(str(f) for f in self.files))

    def __reduce__(self):
        return (
            GeometrySpec,
            (self.shape, dict(self.parameters), dict(self.options), self.files, self.combine),
        )


@dataclass(frozen=True)
class TissueSpec:
    """Tissue axes [SI]: ``diffusivity`` [m^2/s], ``t2`` [s], ``spin_density`` [-],
    ``volume_fraction`` or ``signal_fraction`` [-] (one compartment may omit it: it gets the
    rest), and for coupled geometries only ``permeability`` [m/s] (one value for every
    membrane) and ``surface_relaxivity`` [m/s], each either for every compartment (plain
    name) or for one (``"<compartment>.<name>"``, which overrides the plain one).
    Defaults: t2 = inf, spin_density = 1, permeability = surface_relaxivity = 0, no
    fractions (compartments weighted by their volumes); diffusivity has none."""

    parameters: Mapping[str, Axis]
    combine: str = "product"

    def __post_init__(self) -> None:
        if self.combine not in COMBINE:
            raise ValueError(f"tissue combine must be one of {COMBINE}, got {self.combine!r}")
        _check_axes(self.parameters, "tissue")
        for key in self.parameters:
            name = key.rsplit(".", 1)[-1]
            if name not in TISSUE_PARAMETERS:
                raise ValueError(
                    f"unknown tissue parameter {key!r}; known: {sorted(TISSUE_PARAMETERS)} "
                    "(optionally prefixed by a compartment name and a dot)"
                )
        if not any(k.rsplit(".", 1)[-1] == "diffusivity" for k in self.parameters):
            raise ValueError("the tissue needs a diffusivity [m^2/s] (no default)")
        object.__setattr__(self, "parameters", _frozen(self.parameters))

    def __reduce__(self):
        return (TissueSpec, (dict(self.parameters), self.combine))


@dataclass(frozen=True)
class AcquisitionBlock:
    """Measurements of one sequence: every timing combination x b-value x direction.

    Args:
        sequence: 'pgse' or 'ogse'.
        pulse_duration: gradient pulse durations delta [s].
        pulse_separation: pulse separations Delta [s].
        bvalues: b-values [s/m^2]; b = 0 gives one measurement per timing.
        directions: unit gradient directions (n, 3) [-].
        num_periods: OGSE oscillation periods per lobe [-] (ignored by PGSE).
        kind: OGSE waveform, 'cos' or 'sin'.
        timings_combine: 'product' of the timing lists, or 'zip' to pair them.
    """

    sequence: str
    pulse_duration: tuple[float, ...]
    pulse_separation: tuple[float, ...]
    bvalues: tuple[float, ...]
    directions: tuple[tuple[float, float, float], ...]
    num_periods: tuple[int, ...] = (1,)
    kind: str = "cos"
    timings_combine: str = "product"

    def __post_init__(self) -> None:
        if self.sequence not in SEQUENCES:
            raise ValueError(f"sequence must be one of {SEQUENCES}, got {self.sequence!r}")
        if self.timings_combine not in COMBINE:
            raise ValueError(f"timings_combine must be one of {COMBINE}")
        for name, unit in (
            ("pulse_duration", "s"),
            ("pulse_separation", "s"),
            ("bvalues", "s/m^2"),
        ):
            values = tuple(float(v) for v in getattr(self, name))
            if not values:
                raise ValueError(f"acquisition {name} is empty: give at least one value [{unit}]")
            if not all(math.isfinite(v) and v >= 0 for v in values):
                raise ValueError(f"acquisition {name} must be finite and >= 0 [{unit}]")
            object.__setattr__(self, name, values)
        if any(v <= 0 for v in self.pulse_duration + self.pulse_separation):
            raise ValueError("pulse durations and separations must be positive [s]")
        periods = tuple(self.num_periods)
        if not periods or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in periods
        ):
            raise ValueError(f"num_periods must be positive integers, got {periods}")
        object.__setattr__(self, "num_periods", periods)
        if self.kind not in ("cos", "sin"):
            raise ValueError(f"OGSE kind must be 'cos' or 'sin', got {self.kind!r}")
        object.__setattr__(self, "directions", _unit_directions(self.directions))

    def timings(self) -> list[tuple[float, float, int]]:
        """(pulse_duration [s], pulse_separation [s], num_periods [-]) combinations
        (num_periods is 1 for PGSE)."""
        periods = self.num_periods if self.sequence == "ogse" else (1,)
        lists = (self.pulse_duration, self.pulse_separation, periods)
        if self.timings_combine == "zip":
            lengths = {len(v) for v in lists if len(v) > 1}
            if len(lengths) > 1:
                raise ValueError(
                    "timings_combine = 'zip' needs pulse_duration, pulse_separation and "
                    "num_periods of equal length (or length 1)"
                )
            count = max(len(v) for v in lists)
            combos = [tuple(v[i if len(v) > 1 else 0] for v in lists) for i in range(count)]
        else:
            combos = [(d, s, f) for d in lists[0] for s in lists[1] for f in lists[2]]
        for duration, separation, _ in combos:
            if duration > separation:
                raise ValueError(
                    f"pulse_duration {duration:g} s exceeds pulse_separation {separation:g} s; "
                    "fix the timings or pair them with timings_combine = 'zip'"
                )
        return combos


def _unit_directions(directions) -> tuple[tuple[float, float, float], ...]:
    result = []
    for d in directions:
        vec = tuple(float(x) for x in d)
        norm = math.sqrt(sum(x * x for x in vec))
        if len(vec) != 3 or not math.isfinite(norm) or norm == 0:
            raise ValueError(f"a gradient direction must be a non-zero 3-vector, got {d}")
        result.append(tuple(x / norm for x in vec))
    if not result:
        raise ValueError("an acquisition needs at least one gradient direction")
    return tuple(result)


@dataclass(frozen=True)
class SweepSpec:
    """A whole sweep.

    Args:
        geometries: geometry families (their points are concatenated).
        tissue: tissue axes (their points are crossed with every geometry point).
        acquisitions: acquisition blocks (their measurements are concatenated).
        seed: seed of every random axis.
        chunk_rows: rows per stored chunk (the unit of resumption and of a Ray shard).
        normalize: divide by the signal without weighting (dimensionless signal).
        name: free text.
        plausibility: override of the range checks (``mf_dmri.plausibility``) for every
            geometry, tissue value and acquisition of the sweep (TOML ``[checks]``).
    """

    geometries: tuple[GeometrySpec, ...]
    tissue: TissueSpec
    acquisitions: tuple[AcquisitionBlock, ...]
    seed: int = 0
    chunk_rows: int = 256
    normalize: bool = True
    name: str = "sweep"
    plausibility: Plausibility = CHECKED

    def __post_init__(self) -> None:
        object.__setattr__(self, "plausibility", as_plausibility(self.plausibility))
        object.__setattr__(self, "geometries", tuple(self.geometries))
        object.__setattr__(self, "acquisitions", tuple(self.acquisitions))
        if not self.geometries:
            raise ValueError("a sweep needs at least one [[geometry]]")
        if not self.acquisitions:
            raise ValueError("a sweep needs at least one [[acquisition]]")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.chunk_rows, int) or self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be a positive integer, got {self.chunk_rows!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (SI values) for provenance and the config hash; the
        plausibility override appears only when one is given (so the hash of a sweep
        without one is that of earlier versions)."""
        plain = _plain(self)
        checks = plain.pop("plausibility")
        if self.plausibility != CHECKED:
            plain["checks"] = {"allow": sorted(checks["allow"]), "enabled": checks["enabled"]}
        return plain


def _plain(value):
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (Values, Grid, Random)):
        return {
            "type": type(value).__name__,
            **{f.name: _plain(getattr(value, f.name)) for f in fields(value)},
        }
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value
