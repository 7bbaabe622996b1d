"""Compartments: a domain (eigenbasis or product domain) with its tissue properties."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from mf_dmri._checks import DTYPE, as_real_tensor, check_positive
from mf_dmri.eigenbasis import Eigenbasis, ProductDomain, as_product_domain
from mf_dmri.plausibility import Plausibility, check_plausible


@dataclass(frozen=True)
class Compartment:
    """One impermeable compartment.

    Args:
        domain: the compartment's eigen-data: a 3-D ``Eigenbasis`` or a ``ProductDomain``
            (e.g. a disk times free diffusion along an axis).
        diffusivity: intrinsic diffusion coefficient [m^2/s], positive.
        t2: transverse relaxation time [s], positive (``math.inf`` for none).
        spin_density: relative proton density [-], non-negative.
        volume_fraction: the compartment's share of the voxel volume [-], in [0, 1], or
            None to weight it by its own volume.  Give it to every compartment of a
            signal or to none; it is required when compartments of different kinds are
            mixed (see :func:`compartment_weights`).
        plausibility: override of the range checks (``mf_dmri.plausibility``) of the
            diffusivity, T2 and the extent of mesh domains, volume^(1/d) of each factor
            (a mesh in micrometres read as metres is refused), keyword.
    """

    domain: ProductDomain
    diffusivity: torch.Tensor
    t2: torch.Tensor = math.inf
    spin_density: torch.Tensor = 1.0
    volume_fraction: torch.Tensor | None = None
    plausibility: Plausibility | None = field(default=None, kw_only=True, repr=False)

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
        fraction = self.volume_fraction
        if fraction is not None:
            fraction = as_real_tensor(fraction, "volume_fraction", device=device)
            check_positive(fraction, "volume_fraction", "-", allow_zero=True)
            if float(fraction.detach()) > 1:
                raise ValueError(f"volume_fraction must be in [0, 1], got {float(fraction):g}")
        _check_tissue_plausible(domain, diffusivity, t2, self.plausibility)
        for name, value in (
            ("volume_fraction", fraction),
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

    @property
    def kind(self) -> str:
        """'finite' (closed in 3-D), or how many directions are unrestricted: an infinite
        cylinder's 'volume' is its cross-section times 1 m, a free compartment's is 1 m^3,
        so volumes of different kinds cannot be compared."""
        free = int(self.domain.free_axes.shape[0])
        return "finite" if free == 0 else f"{free} free direction{'s' * (free > 1)}"


#: Labels of the analytic factors, whose sizes their builders check already.
_ANALYTIC = ("interval", "disk", "ball")


def _check_tissue_plausible(domain, diffusivity, t2, plausibility) -> None:
    check_plausible("diffusivity", diffusivity, "diffusivity", plausibility, stacklevel=5)
    check_plausible("t2", t2, "t2", plausibility, stacklevel=5)
    for factor in domain.factors:
        if factor.label in _ANALYTIC:
            continue
        extent = float(factor.volume.detach()) ** (1.0 / factor.dimension)
        name = f"extent of the {factor.dimension}-D domain (volume^(1/{factor.dimension}))"
        check_plausible("length", extent, name, plausibility, stacklevel=5)


def compartment_weights(
    compartments: tuple[Compartment, ...], echo_time: torch.Tensor
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(weight of each compartment at ``echo_time`` [s], normalisation) of a signal.

    Without volume fractions, compartment c weighs V_c rho_c exp(-TE/T2_c) and the
    normalisation is sum V_c rho_c [m^3]; this needs compartments of one kind (all closed,
    or all infinite cylinders per unit length, ...), else a ``ValueError`` asks for
    fractions.  With volume fractions f_c (all compartments; several must sum to 1, a
    single one is that compartment's share of the voxel) the weight is
    f_c rho_c exp(-TE/T2_c) and the normalisation sum f_c rho_c [-].
    """
    given = [c.volume_fraction is not None for c in compartments]
    if any(given) and not all(given):
        missing = [i for i, g in enumerate(given) if not g]
        raise ValueError(
            f"volume_fraction is given for some compartments but not for {missing} (by "
            "position): give it to every compartment or to none"
        )
    if all(given):
        total = sum(float(c.volume_fraction.detach()) for c in compartments)
        if len(compartments) > 1 and abs(total - 1.0) > 1e-9:
            raise ValueError(f"the volume fractions must add up to 1, got {total:.12g}")
        sizes = [c.volume_fraction for c in compartments]
    else:
        kinds = sorted({c.kind for c in compartments})
        if len(kinds) > 1:
            raise ValueError(
                f"these compartments cannot be weighted by their volumes: they mix {kinds} "
                "(an infinite cylinder's volume is its cross-section times 1 m, so a 5 um "
                "sphere would weigh 0.003% against it); give each Compartment a "
                "volume_fraction (e.g. 0.6 intra-axonal, 0.4 extra-axonal)"
            )
        sizes = [c.volume for c in compartments]
    decay = [torch.exp(-echo_time / c.t2) for c in compartments]
    weights = [size * c.spin_density * d for size, c, d in zip(sizes, compartments, decay)]
    reference = sum(size * c.spin_density for size, c in zip(sizes, compartments))
    return weights, reference


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
