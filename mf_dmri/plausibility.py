"""Plausibility of physical inputs: ranges of biological diffusion MRI, in SI units.

Every physical input of the public API is checked against the range of its quantity
below.  Outside the *possible* range (clearly impossible in biological dMRI: a 5 m axon,
D = 2 m^2/s, T2 = 80 s) a :class:`ImplausibleValueError` is raised; outside the *typical*
range (unusual but possible: a 1 mm compartment, b = 0.5 s/mm^2) a
:class:`PlausibilityWarning` is issued.  Both messages name the argument, the value with
its unit, the range, and the likely unit mistake: the same number read in another unit of
the quantity that falls in the typical range ("did you mean 5 um = 5e-06 m?").

| quantity          | SI unit | possible          | typical            | other units checked    |
|-------------------|---------|-------------------|--------------------|------------------------|
| length            | m       | 1 nm .. 1 cm      | 0.1 um .. 1 mm     | mm, um, nm             |
| diffusivity       | m^2/s   | 1e-16 .. 1e-3     | 1e-12 .. 3.5e-9    | mm^2/s, um^2/ms, um^2/s|
| t2                | s       | 10 us .. 10 s     | 5 ms .. 3 s        | ms, us                 |
| permeability      | m/s     | 0 .. 1            | 0 .. 1e-3          | um/ms, um/s            |
| surface_relaxivity| m/s     | 0 .. 1            | 0 .. 1e-3          | um/ms, um/s            |
| bvalue            | s/m^2   | 0, 1e5 .. 1e12    | 0, 1e6 .. 5e10     | s/mm^2, ms/um^2        |
| gradient          | T/m     | 0 .. 20           | 0 .. 1.5           | mT/m, G/cm             |
| pulse_duration    | s       | 100 ns .. 1 s     | 0.1 ms .. 100 ms   | ms, us                 |
| diffusion_time    | s       | 100 ns .. 20 s    | 0.1 ms .. 2 s      | ms, us                 |
| frequency         | Hz      | 0 .. 1e5          | 0 .. 5e3           | kHz                    |

Sources: free water diffuses at 3.0e-9 m^2/s at 37 C (Holz et al. 2000, Phys. Chem. Chem.
Phys. 2, 4740); brain T2 at 3 T is 40-100 ms, CSF about 2 s (Wansapura et al. 1999, J.
Magn. Reson. Imaging 9, 531); axon radii are 0.1-10 um, cell bodies up to 100 um;
membrane permeabilities 1e-7 .. 1e-4 m/s and surface relaxivities below 1e-4 m/s;
clinical b up to 10,000 s/mm^2 and preclinical up to 50,000 s/mm^2; gradients up to
0.3 T/m (Connectom) and 1.5 T/m (preclinical); OGSE frequencies up to a few kHz.

An intended unusual value is accepted with an explicit :class:`Plausibility` passed to
the constructor (``plausibility=Plausibility(allow=("length",))`` accepts any length,
``UNCHECKED`` accepts everything); there is no global switch.  The TOML ``[checks]``
table of a simulation or sweep config and the ``--allow`` flag of ``mf-dmri simulate`` and
``mf-dmri sweep`` map onto the same object (docs/plausibility.md).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch


class PlausibilityWarning(UserWarning):
    """A physical input outside the typical range of biological dMRI (but possible);
    ``value`` is the offending value [SI unit of the quantity]."""

    def __init__(self, message: str, value: float | None = None) -> None:
        super().__init__(message)
        self.value = value


class ImplausibleValueError(ValueError):
    """A physical input outside the possible range of biological dMRI.

    Attributes:
        quantity: the row of :data:`RANGES` (e.g. ``"length"``).
        name: the argument as the user named it.
        value: the offending value [SI unit of the quantity].
    """

    def __init__(self, message: str, quantity: str, name: str, value: float) -> None:
        super().__init__(message)
        self.quantity = quantity
        self.name = name
        self.value = value


@dataclass(frozen=True)
class PhysicalRange:
    """Possible and typical range of one physical quantity [``si_unit``].

    ``possible`` and ``typical`` are (low, high); ``usual``: a representative value (the
    unit guessed for an out-of-range number is the one closest to it); ``units``: other
    units (label, factor to SI) in which users commonly give the quantity, tried when a
    value is out of range.  Zero and negative values are not ranged here: the
    constructors' sign checks refuse or accept them (b = 0, g = 0, impermeable)."""

    si_unit: str
    possible: tuple[float, float]
    typical: tuple[float, float]
    units: tuple[tuple[str, float], ...]
    usual: float


RANGES: dict[str, PhysicalRange] = {
    "length": PhysicalRange(
        "m",
        (1e-9, 1e-2),
        (1e-7, 1e-3),
        (("m", 1.0), ("mm", 1e-3), ("um", 1e-6), ("nm", 1e-9)),
        5e-6,
    ),
    "diffusivity": PhysicalRange(
        "m^2/s",
        (1e-16, 1e-3),
        (1e-12, 3.5e-9),
        (("m^2/s", 1.0), ("mm^2/s", 1e-6), ("um^2/ms", 1e-9), ("um^2/s", 1e-12)),
        2e-9,
    ),
    "t2": PhysicalRange(
        "s", (1e-5, 10.0), (5e-3, 3.0), (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)), 0.08
    ),
    "permeability": PhysicalRange(
        "m/s", (0.0, 1.0), (0.0, 1e-3), (("m/s", 1.0), ("um/ms", 1e-3), ("um/s", 1e-6)), 1e-5
    ),
    "surface_relaxivity": PhysicalRange(
        "m/s", (0.0, 1.0), (0.0, 1e-3), (("m/s", 1.0), ("um/ms", 1e-3), ("um/s", 1e-6)), 1e-5
    ),
    "bvalue": PhysicalRange(
        "s/m^2",
        (1e5, 1e12),
        (1e6, 5e10),
        (("s/m^2", 1.0), ("s/mm^2", 1e6), ("ms/um^2", 1e9)),
        1e9,
    ),
    "gradient": PhysicalRange(
        "T/m", (0.0, 20.0), (0.0, 1.5), (("T/m", 1.0), ("mT/m", 1e-3), ("G/cm", 1e-2)), 0.05
    ),
    "pulse_duration": PhysicalRange(
        "s", (1e-7, 1.0), (1e-4, 0.1), (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)), 0.01
    ),
    "diffusion_time": PhysicalRange(
        "s", (1e-7, 20.0), (1e-4, 2.0), (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)), 0.03
    ),
    "frequency": PhysicalRange("Hz", (0.0, 1e5), (0.0, 5e3), (("Hz", 1.0), ("kHz", 1e3)), 100.0),
}

#: Free-water diffusivity at 37 C [m^2/s], the largest D of tissue: bounds exp(-b D).
_FREE_WATER = 3.0e-9


@dataclass(frozen=True)
class Plausibility:
    """How physical inputs are checked (passed to constructors; no global state).

    Args:
        allow: quantities (keys of :data:`RANGES`) whose unusual or impossible values are
            intended: accepted without error or warning.
        enabled: False accepts every value (``UNCHECKED``).
    """

    allow: frozenset[str] = field(default_factory=frozenset)
    enabled: bool = True

    def __post_init__(self) -> None:
        allow = frozenset([self.allow] if isinstance(self.allow, str) else self.allow)
        unknown = sorted(allow - set(RANGES))
        if unknown:
            raise ValueError(
                f"Plausibility(allow=...) has unknown quantities {unknown}; "
                f"known: {', '.join(RANGES)}"
            )
        object.__setattr__(self, "allow", allow)

    def checks(self, quantity: str) -> bool:
        return self.enabled and quantity not in self.allow


#: The default: raise on impossible values, warn on unusual ones.
CHECKED = Plausibility()
#: Accept every value.
UNCHECKED = Plausibility(enabled=False)


def as_plausibility(value: Plausibility | None) -> Plausibility:
    """``value``, or the default :data:`CHECKED` for None."""
    if value is None:
        return CHECKED
    if not isinstance(value, Plausibility):
        raise TypeError(
            f"plausibility must be a mf_dmri.Plausibility (or None), got {type(value).__name__}"
        )
    return value


def _values(value: Any) -> list[float]:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().reshape(-1).tolist()
    elif isinstance(value, Iterable):
        value = [float(v) for v in value]
    else:
        value = [float(value)]
    return [v for v in value if math.isfinite(v)]


def _suggestion(quantity: str, value: float, given: tuple[str, float]) -> str:
    """' Did you mean X unit = Y SI?' for the unit that puts the number in the typical
    range (closest to its centre), or ''."""
    spec = RANGES[quantity]
    number = value / given[1]
    low, high = spec.typical
    centre = spec.usual
    best = None
    for label, factor in spec.units:
        if math.isclose(factor, given[1]):
            continue
        candidate = number * factor
        if low <= candidate <= high and candidate > 0:
            distance = abs(math.log(candidate / centre))
            if best is None or distance < best[0]:
                best = (distance, label, candidate)
    if best is None:
        return ""
    _, label, candidate = best
    return f" Did you mean {number:g} {label} = {candidate:.4g} {spec.si_unit}?"


def _consequence(quantity: str, value: float) -> str:
    if quantity == "bvalue" and value < RANGES["bvalue"].typical[0]:
        attenuation = math.exp(-value * _FREE_WATER)
        return f" Even free water gives E = exp(-b D) = {attenuation:.6f}: no diffusion weighting."
    return ""


def _range_text(spec: PhysicalRange, bounds: tuple[float, float]) -> str:
    return f"{bounds[0]:g} .. {bounds[1]:g} {spec.si_unit}"


def check_plausible(
    quantity: str,
    value: Any,
    name: str,
    plausibility: Plausibility | None = None,
    *,
    given: tuple[str, float] | None = None,
    stacklevel: int = 3,
) -> None:
    """Raise :class:`ImplausibleValueError` if ``value`` (scalar, sequence or tensor, in
    the SI unit of ``quantity``) is impossible, warn with :class:`PlausibilityWarning` if
    it is unusual (see :data:`RANGES`).

    Args:
        quantity: a key of :data:`RANGES`.
        value: the value(s) [SI unit of the quantity]; non-finite entries are skipped
            (``t2 = inf`` means no relaxation).
        name: the argument or key as the user wrote it, for the message.
        plausibility: the override (None: :data:`CHECKED`).
        given: (label, factor to SI) of the unit the user wrote the number in (a TOML key
            suffix); default the SI unit.
    """
    plausibility = as_plausibility(plausibility)
    if not plausibility.checks(quantity):
        return
    spec = RANGES[quantity]
    given = given or (spec.si_unit, 1.0)
    # zero and negative values are left to the sign checks of the constructors
    values = [v for v in _values(value) if v > 0.0]
    if not values:
        return
    worst = max(values, key=lambda v: _outside(spec, v))
    fix = (
        f" If the value is intended, pass plausibility=Plausibility(allow={{'{quantity}'}}) "
        f'(TOML: [checks] allow = ["{quantity}"]; command line: --allow {quantity}).'
    )
    shown = f"{name} = {worst / given[1]:g} {given[0]}"
    if given[1] != 1.0:
        shown += f" (= {worst:g} {spec.si_unit})"
    hint = _suggestion(quantity, worst, given) + _consequence(quantity, worst)
    low, high = spec.possible
    if not low <= worst <= high:
        raise ImplausibleValueError(
            f"{shown} is impossible as a {quantity} in biological diffusion MRI (possible: "
            f"{_range_text(spec, spec.possible)}; inputs are in SI units).{hint}{fix}",
            quantity,
            name,
            worst,
        )
    low, high = spec.typical
    if not low <= worst <= high:
        message = (
            f"{shown} is unusual as a {quantity} in biological diffusion MRI (typical: "
            f"{_range_text(spec, spec.typical)}; inputs are in SI units).{hint}{fix}"
        )
        warnings.warn(PlausibilityWarning(message, worst), stacklevel=stacklevel)


def _outside(spec: PhysicalRange, value: float) -> float:
    """How far (in decades) ``value`` lies outside the typical range; 0 inside."""
    low, high = spec.typical
    if value > high:
        return math.log10(value / high) if high > 0 else math.inf
    if value < low:
        return math.log10(low / value)
    return 0.0


#: The largest b-value of a protocol attenuates free water by at least this much [-]:
#: below it no measurement weights diffusion (b-values in ms/um^2 read as s/mm^2 are).
MIN_FREE_WATER_ATTENUATION = 0.1


def check_diffusion_weighting(
    bvalues: Any,
    name: str,
    plausibility: Plausibility | None = None,
    *,
    given: tuple[str, float] = ("s/m^2", 1.0),
) -> None:
    """Raise :class:`ImplausibleValueError` (quantity ``bvalue``) if the largest b-value
    [s/m^2] of a protocol weights no diffusion: free water (D = 3e-9 m^2/s) loses less
    than :data:`MIN_FREE_WATER_ATTENUATION` of its signal, exp(-b_max D) > 0.9, i.e.
    b_max < 35 s/mm^2.  Each value may be plausible alone (IVIM's low b-values) while the
    whole protocol is a unit mistake (b-values in ms/um^2 read as s/mm^2).  A protocol of
    b = 0 only is left alone.

    Args:
        bvalues: the protocol's b-values [s/m^2].
        name: the argument, key or file as the user named it, for the message.
        plausibility: the override (``allow={"bvalue"}`` accepts the protocol).
        given: (label, factor to SI) of the unit the user wrote the numbers in.
    """
    plausibility = as_plausibility(plausibility)
    values = [v for v in _values(bvalues) if v > 0.0]
    if not values or not plausibility.checks("bvalue"):
        return
    largest = max(values)
    attenuation = math.exp(-largest * _FREE_WATER)
    if attenuation <= 1.0 - MIN_FREE_WATER_ATTENUATION:
        return
    raise ImplausibleValueError(
        f"{name}: the largest b-value is {largest / given[1]:g} {given[0]} (= {largest:g} "
        f"s/m^2), which weights no diffusion: even free water keeps E = exp(-b D) = "
        f"{attenuation:.4f} (a protocol needs b_max >= "
        f"{-math.log(1.0 - MIN_FREE_WATER_ATTENUATION) / _FREE_WATER / given[1]:.3g} "
        f"{given[0]}).{_suggestion('bvalue', largest, given)} Fix the unit of the b-values. "
        "If the protocol is intended, pass plausibility=Plausibility(allow={'bvalue'}) "
        '(TOML: [checks] allow = ["bvalue"]; command line: --allow bvalue).',
        "bvalue",
        name,
        largest,
    )
