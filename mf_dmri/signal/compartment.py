"""Compartments: a domain (eigenbasis or product domain) with its tissue properties."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mf_dmri._checks import DTYPE, as_real_tensor, check_positive
from mf_dmri.eigenbasis import Eigenbasis, ProductDomain, as_product_domain


@dataclass(frozen=True)
class Compartment:
    """One impermeable compartment.

    Args:
        domain: the compartment's eigen-data: a 3-D ``Eigenbasis`` or a ``ProductDomain``
            (e.g. a disk times free diffusion along an axis).
        diffusivity: intrinsic diffusion coefficient [m^2/s], positive.
        t2: transverse relaxation time [s], positive (``math.inf`` for none).
        spin_density: relative proton density [-], non-negative.
    """

    domain: ProductDomain
    diffusivity: torch.Tensor
    t2: torch.Tensor = math.inf
    spin_density: torch.Tensor = 1.0

    def __post_init__(self) -> None:
        domain = as_product_domain(self.domain)
        device = domain.free_axes.device
        diffusivity = as_real_tensor(self.diffusivity, "diffusivity", device=device)
        if diffusivity.ndim != 0:
            raise ValueError("diffusivity must be a scalar [m^2/s]")
        check_positive(diffusivity, "diffusivity", "m^2/s")
        t2 = self.t2
        if _is_positive_infinity(t2):
            t2 = torch.as_tensor(t2, dtype=DTYPE, device=device)
        else:
            t2 = as_real_tensor(t2, "t2", device=device)
            check_positive(t2, "t2", "s")
        density = as_real_tensor(self.spin_density, "spin_density", device=device)
        check_positive(density, "spin_density", "-", allow_zero=True)
        for name, value in (
            ("domain", domain),
            ("diffusivity", diffusivity),
            ("t2", t2),
            ("spin_density", density),
        ):
            object.__setattr__(self, name, value)

    @property
    def volume(self) -> torch.Tensor:
        """Volume of the compartment [m^3] (per unit length/area along free axes)."""
        return self.domain.volume

    def weight(self, echo_time: torch.Tensor) -> torch.Tensor:
        """Signal weight volume x spin density x exp(-TE/T2) [m^3]; ``echo_time`` [s]."""
        return self.volume * self.spin_density * torch.exp(-echo_time / self.t2)


def _is_positive_infinity(value) -> bool:
    """True for ``math.inf`` or a scalar tensor holding +inf (no relaxation)."""
    if isinstance(value, torch.Tensor):
        return value.ndim == 0 and bool(torch.isposinf(value.detach()))
    try:
        return math.isinf(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False


def as_compartments(
    compartments: Compartment | Eigenbasis | ProductDomain | list,
) -> tuple[Compartment, ...]:
    """Normalise the ``compartments`` argument of the signal functions to a tuple."""
    if isinstance(compartments, Compartment):
        return (compartments,)
    if isinstance(compartments, (Eigenbasis, ProductDomain)):
        raise TypeError(
            "a bare eigenbasis has no diffusivity: wrap it as Compartment(domain, diffusivity=...)"
        )
    result = tuple(compartments)
    if any(type(c).__name__ == "CoupledBasis" for c in result):
        raise TypeError(
            "a CoupledBasis is one whole coupled system: pass it alone to signal(), not in a "
            "list with other compartments"
        )
    if not result or not all(isinstance(c, Compartment) for c in result):
        raise TypeError("compartments must be a Compartment or a non-empty list of them")
    return result
