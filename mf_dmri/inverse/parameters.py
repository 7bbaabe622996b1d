"""Named physical parameters with bounds, and their well-scaled unconstrained form.

The optimiser works on unconstrained variables z of order one, never on the physical
values (a radius of 5e-6 m next to a diffusivity of 2e-9 m^2/s).  Each parameter maps as

* bounded on both sides: x = lower + (upper - lower) * sigmoid(z)  (a scaled logit);
* bounded below only:    x = lower + scale * exp(z);
* bounded above only:    x = upper - scale * exp(z);
* unbounded:             x = scale * z.

A parameter may be fixed: it is passed to the forward model at its initial value and is
neither optimised nor part of the covariance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from mf_dmri._checks import DTYPE


@dataclass(frozen=True)
class Parameter:
    """One named physical parameter of a forward model.

    Args:
        name: the key under which the forward model receives the value.
        initial: starting value, strictly inside the bounds [unit of the parameter].
        lower: lower bound (``-math.inf`` for none) [unit of the parameter].
        upper: upper bound (``math.inf`` for none) [unit of the parameter].
        scale: typical magnitude used by the one-sided and unbounded maps [unit of the
            parameter]; by default ``upper - lower`` (two bounds) or ``|initial|``.
        fixed: keep the parameter at ``initial`` (not fitted).
        unit: the unit as text, for reports (e.g. "m").
    """

    name: str
    initial: float
    lower: float = -math.inf
    upper: float = math.inf
    scale: float | None = None
    fixed: bool = False
    unit: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"parameter name must be an identifier, got {self.name!r}")
        for label in ("initial", "lower", "upper"):
            value = getattr(self, label)
            if not isinstance(value, (int, float)) or math.isnan(value):
                raise ValueError(f"{self.name}: {label} must be a number, got {value!r}")
            object.__setattr__(self, label, float(value))
        if math.isinf(self.initial):
            raise ValueError(f"{self.name}: initial must be finite")
        if not self.lower < self.upper:
            raise ValueError(f"{self.name}: need lower < upper, got [{self.lower}, {self.upper}]")
        if not self.fixed and not self.lower < self.initial < self.upper:
            raise ValueError(
                f"{self.name}: initial {self.initial:g} must lie strictly inside "
                f"({self.lower:g}, {self.upper:g}); move it inside or widen the bounds"
            )
        if self.scale is not None:
            if not (isinstance(self.scale, (int, float)) and self.scale > 0):
                raise ValueError(f"{self.name}: scale must be a positive number")
            object.__setattr__(self, "scale", float(self.scale))
        elif self.bounded and not self.fixed:
            object.__setattr__(self, "scale", self.upper - self.lower)
        elif self.initial != 0:
            object.__setattr__(self, "scale", abs(self.initial))
        elif not self.fixed:
            raise ValueError(f"{self.name}: initial is 0 and unbounded: give scale explicitly")
        else:
            object.__setattr__(self, "scale", 1.0)

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.lower) and math.isfinite(self.upper)

    def to_physical(self, z: torch.Tensor) -> torch.Tensor:
        """Physical value of the unconstrained variable ``z`` [-] (differentiable)."""
        if self.bounded:
            return self.lower + (self.upper - self.lower) * torch.sigmoid(z)
        if math.isfinite(self.lower):
            return self.lower + self.scale * torch.exp(z)
        if math.isfinite(self.upper):
            return self.upper - self.scale * torch.exp(z)
        return self.scale * z

    def to_unconstrained(self, value: float) -> float:
        """Unconstrained variable of the physical ``value`` (strictly inside the bounds)."""
        if not self.lower < value < self.upper:
            raise ValueError(
                f"{self.name}: value {value:g} is not strictly inside "
                f"({self.lower:g}, {self.upper:g})"
            )
        if self.bounded:
            fraction = (value - self.lower) / (self.upper - self.lower)
            return math.log(fraction) - math.log1p(-fraction)
        if math.isfinite(self.lower):
            return math.log((value - self.lower) / self.scale)
        if math.isfinite(self.upper):
            return math.log((self.upper - value) / self.scale)
        return value / self.scale

    def with_initial(self, initial: float) -> Parameter:
        """A copy with another starting value."""
        return Parameter(
            self.name, initial, self.lower, self.upper, self.scale, self.fixed, self.unit
        )

    def with_fixed(self, value: float) -> Parameter:
        """A copy fixed at ``value``."""
        return Parameter(self.name, value, self.lower, self.upper, self.scale, True, self.unit)


@dataclass(frozen=True)
class ParameterSpace:
    """An ordered set of parameters; the free ones form the optimisation vector."""

    parameters: tuple[Parameter, ...]

    def __post_init__(self) -> None:
        params = tuple(self.parameters)
        if not params or not all(isinstance(p, Parameter) for p in params):
            raise TypeError("parameters must be a non-empty sequence of Parameter")
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names must be unique, got {names}")
        if not any(not p.fixed for p in params):
            raise ValueError("every parameter is fixed: nothing to fit")
        object.__setattr__(self, "parameters", params)

    @property
    def free(self) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if not p.fixed)

    @property
    def free_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.free)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def __getitem__(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(f"no parameter named {name!r}; known: {list(self.names)}")

    def fixed_values(self) -> dict[str, torch.Tensor]:
        return {p.name: torch.tensor(p.initial, dtype=DTYPE) for p in self.parameters if p.fixed}

    def physical(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """All parameters as 0-d tensors from the free unconstrained vector ``z`` (F,)."""
        values = self.fixed_values()
        for i, p in enumerate(self.free):
            values[p.name] = p.to_physical(z[i])
        return {name: values[name] for name in self.names}

    def unconstrained(self, values: Mapping[str, float] | None = None) -> torch.Tensor:
        """The free unconstrained vector (F,) of ``values`` (default: the initial values)."""
        values = values or {}
        return torch.tensor(
            [p.to_unconstrained(float(values.get(p.name, p.initial))) for p in self.free],
            dtype=DTYPE,
        )

    def from_values(self, values: Mapping[str, torch.Tensor], free: torch.Tensor):
        """All parameters with the free ones replaced by ``free`` (F,) physical values."""
        result = {name: torch.as_tensor(v, dtype=DTYPE) for name, v in values.items()}
        for i, name in enumerate(self.free_names):
            result[name] = free[i]
        return {name: result[name] for name in self.names}


def as_space(parameters: ParameterSpace | Sequence[Parameter]) -> ParameterSpace:
    """Accept a ``ParameterSpace`` or a sequence of ``Parameter``."""
    if isinstance(parameters, ParameterSpace):
        return parameters
    return ParameterSpace(tuple(parameters))
