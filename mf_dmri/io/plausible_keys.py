"""Plausibility of TOML / CLI values, checked per key as the user wrote it.

Every dimensional key is converted to SI by its unit suffix and checked against the range
of its quantity (:mod:`mf_dmri.plausibility`); an impossible value raises a
:class:`~mf_dmri.io.vocabulary.ConfigError` naming the key, an unusual one warns with
:class:`~mf_dmri.plausibility.PlausibilityWarning`.  When the number would be plausible
as an SI value, the message says so: ``pulse_duration_ms = 0.01`` is an SI value under a
millisecond key.  The ``[checks]`` table (``allow = ["length", ...]`` or
``enabled = false``) and the command line's ``--allow`` give the override.  Signs are no
plausibility matter: :func:`check_sign` refuses a radius <= 0 or a fraction of -0.1
whatever the override.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from mf_dmri.io.vocabulary import ConfigError, Key
from mf_dmri.plausibility import (
    RANGES,
    ImplausibleValueError,
    Plausibility,
    PlausibilityWarning,
    check_plausible,
)

#: Python name of a key -> row of ``mf_dmri.plausibility.RANGES``.
KEY_QUANTITIES = {
    "radius": "length",
    "length": "length",
    "width": "length",
    "mean_radius": "length",
    "diffusivity": "diffusivity",
    "intra_diffusivity": "diffusivity",
    "extra_diffusivity": "diffusivity",
    "extra_parallel_diffusivity": "diffusivity",
    "extra_perpendicular_diffusivity": "diffusivity",
    "t2": "t2",
    "permeability": "permeability",
    "surface_relaxivity": "surface_relaxivity",
    "pulse_duration": "pulse_duration",
    "pulse_separation": "diffusion_time",
    "echo_time": "diffusion_time",
    "b": "bvalue",
    "gradient": "gradient",
}


def parse_checks(section: Any, allow: Iterable[str] = ()) -> Plausibility:
    """The :class:`Plausibility` of a ``[checks]`` table: ``allow`` (quantities whose
    unusual values are intended) and ``enabled`` (false: no range checks); ``allow`` (the
    command line's ``--allow``) adds quantities to the table's."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError("[checks] must be a table", ("checks",), "[checks]")
    unknown = sorted(set(section) - {"allow", "enabled"})
    if unknown:
        raise ConfigError(
            f"[checks] has unknown keys {unknown}; allowed: allow, enabled", tuple(unknown), ""
        )
    written = section.get("allow", [])
    if not isinstance(written, list) or not all(isinstance(a, str) for a in written):
        raise ConfigError(
            f"[checks] allow must be a list of quantities ({', '.join(RANGES)}), got {written!r}",
            ("allow",),
            "[checks]",
        )
    enabled = section.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(
            f"[checks] enabled must be true or false, got {enabled!r}", ("enabled",), "[checks]"
        )
    try:
        return Plausibility(allow=frozenset(written) | frozenset(allow), enabled=enabled)
    except ValueError as exc:
        raise ConfigError(f"[checks] allow: {exc}", ("allow",), "[checks]") from exc


#: Python names whose values must be > 0 whatever their quantity's range says.
_POSITIVE_QUANTITIES = ("length", "time", "diffusivity", "eigenvalue")
_NONNEGATIVE_QUANTITIES = ("bvalue", "gradient", "permeability")
_FRACTIONS = ("volume_fraction", "signal_fraction")


def check_sign(resolved: Key, key: str, values_si: Any, where: str) -> None:
    """Refuse values of key ``key`` (resolved by :func:`~mf_dmri.io.vocabulary.split_key`)
    in section ``where`` that no override makes meaningful: a length, time, diffusivity or
    eigenvalue cutoff <= 0 (a deformation ``*_amplitude`` may be 0), a negative b-value,
    gradient, permeability or spin density, a fraction outside [0, 1]."""
    name, quantity = resolved.name, resolved.quantity
    if name in _FRACTIONS:
        rule, wrong = "in [0, 1]", lambda v: not 0.0 <= v <= 1.0
    elif (
        name == "spin_density"
        or quantity in _NONNEGATIVE_QUANTITIES
        or (quantity in _POSITIVE_QUANTITIES and name.endswith("_amplitude"))
    ):
        rule, wrong = "non-negative (>= 0)", lambda v: v < 0.0
    elif quantity in _POSITIVE_QUANTITIES:
        rule, wrong = "positive (> 0)", lambda v: v <= 0.0
    else:
        return
    bad = [float(v) for v in values_si if wrong(float(v))]
    if bad:
        unit = f" {resolved.unit}" if resolved.unit else ""
        raise ConfigError(
            f"{where} {key}: {name} must be {rule}, got {bad[0] / resolved.factor:g}{unit}; "
            "correct the value (no override accepts it)",
            (key,),
            where,
        )


def check_key(
    name: str,
    key: str,
    suffix: str,
    factor: float,
    values_si: Any,
    where: str,
    plausibility: Plausibility | None = None,
) -> None:
    """Check the SI value(s) of key ``key`` (Python name ``name``, unit ``suffix`` with
    ``factor`` to SI) in section ``where``; no-op for quantities without a range."""
    quantity = KEY_QUANTITIES.get(name)
    if quantity is None:
        return
    label = f"{where} {key}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PlausibilityWarning)
        try:
            check_plausible(quantity, values_si, label, plausibility, given=(suffix, factor))
        except ImplausibleValueError as exc:
            hint = _si_hint(quantity, exc.value, key, factor)
            raise ConfigError(f"{exc}{hint}", (key,), where) from exc
    for warning in caught:
        if issubclass(warning.category, PlausibilityWarning):
            hint = _si_hint(quantity, _number(warning.message), key, factor)
            warnings.warn(f"{warning.message}{hint}", PlausibilityWarning, stacklevel=3)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )


def _number(message: Any) -> float | None:
    return getattr(message, "value", None)


def _si_hint(quantity: str, value_si: float | None, key: str, factor: float) -> str:
    """' The number looks like an SI value ...' when it is typical read in SI."""
    if value_si is None or factor == 1.0:
        return ""
    number = value_si / factor
    low, high = RANGES[quantity].typical
    if not low <= number <= high:
        return ""
    unit = RANGES[quantity].si_unit
    return (
        f" The number looks like an SI value ({number:g} {unit}) under a key in another "
        f"unit: write {key} = {number / factor:g}."
    )


def axis_extremes(axis: Any) -> list[float]:
    """The values of a sweep axis (``Values``), or its ends (``Grid``, ``Random``) [SI]."""
    if hasattr(axis, "values"):
        return [float(v) for v in axis.values]
    return [
        float(axis.start if hasattr(axis, "start") else axis.low),
        float(axis.stop if hasattr(axis, "stop") else axis.high),
    ]
