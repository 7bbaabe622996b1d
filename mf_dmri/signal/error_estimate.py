"""A-posteriori estimate of the matrix-formalism truncation error.

The MF keeps the Neumann eigenmodes up to a cutoff lambda_c.  Its truncation error at
lambda_c is estimated by the change of the signal when the cutoff is raised to a reference
lambda_ref > lambda_c (default: every mode of the bases passed in):

    error_estimate = |E(lambda_c) - E(lambda_ref)|,

which equals the true error |E(lambda_c) - E(inf)| up to the (smaller) error of
E(lambda_ref) when the MF converges fast in the cutoff.  Compute the bases once at the
reference cutoff (e.g. 2 lambda_c, i.e. the length scale divided by sqrt 2); the signal at
lambda_c uses the same bases truncated, so no second eigen-solve is needed.  The estimate
is validated against the time-stepping reference (:mod:`mf_dmri.signal.btpde`) in
tests/test_btpde_error_estimate.py and validation/btpde_report.md; to check a cutoff
against the BTPDE directly, use :func:`mf_dmri.signal.btpde_check.compare_with_btpde`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from mf_dmri.eigenbasis import Eigenbasis, ProductDomain
from mf_dmri.signal.api import as_pieces, signal
from mf_dmri.signal.compartment import Compartment, as_compartments
from mf_dmri.signal.dense import DenseExponential
from mf_dmri.signal.propagators import Propagator
from mf_dmri.signal.result import SignalResult


@dataclass(frozen=True)
class SignalWithError:
    """The MF signal at a cutoff with its estimated truncation error.

    Args:
        signal: complex128 (M,) signal with every basis truncated at ``max_eigenvalue``.
        error_estimate: float64 (M,) |signal - reference| [same unit as the signal].
        reference: complex128 (M,) signal at ``reference_max_eigenvalue``.
        max_eigenvalue: the requested cutoff lambda_c [1/m^2].
        reference_max_eigenvalue: the reference cutoff lambda_ref [1/m^2] (the largest
            eigenvalue kept when every mode of the bases is used).
        num_modes: modes kept per restricted factor at lambda_c, in compartment order.
        reference_num_modes: the same at lambda_ref.
    """

    signal: torch.Tensor
    error_estimate: torch.Tensor
    reference: torch.Tensor
    max_eigenvalue: float
    reference_max_eigenvalue: float
    num_modes: tuple[int, ...]
    reference_num_modes: tuple[int, ...]

    @property
    def max_error_estimate(self) -> float:
        """Largest estimated error over the measurements."""
        return float(self.error_estimate.max())


def _truncated(compartment: Compartment, cutoff: float) -> Compartment:
    domain: ProductDomain = compartment.domain
    factors = tuple(f.truncated(cutoff) for f in domain.factors)
    return replace(compartment, domain=replace(domain, factors=factors))


def _factors(compartments: tuple[Compartment, ...]) -> list[Eigenbasis]:
    return [f for c in compartments for f in c.domain.factors]


def signal_with_error_estimate(
    compartments: Compartment | list[Compartment],
    acquisition,
    *,
    max_eigenvalue: float,
    reference_max_eigenvalue: float | None = None,
    time_step: float | None = None,
    normalize: bool = True,
) -> SignalWithError:
    """MF signal at the cutoff ``max_eigenvalue`` with an estimate of its truncation error.

    Args:
        compartments: one ``Compartment`` or a list; their bases must hold modes above
            ``max_eigenvalue`` (compute them at the reference cutoff, e.g. with
            ``mesh_eigenbasis(..., max_eigenvalue=2 * max_eigenvalue)``).
        acquisition: an ``Acquisition`` or ``GradientPieces``.
        max_eigenvalue: the cutoff lambda_c of the reported signal [1/m^2].
        reference_max_eigenvalue: the larger reference cutoff [1/m^2]; None uses every
            mode of the bases.
        time_step: longest piece for smooth waveforms [s] (as in :func:`signal`).
        normalize: as in :func:`signal`.

    Returns:
        :class:`SignalWithError`.  The estimate tracks the true error within the factor
        stated in docs/btpde.md when the reference cutoff is about twice lambda_c.
    """
    compartments = as_compartments(compartments)
    cutoff = _check_cutoff(max_eigenvalue, "max_eigenvalue")
    reference_cutoff = math.inf
    if reference_max_eigenvalue is not None:
        reference_cutoff = _check_cutoff(reference_max_eigenvalue, "reference_max_eigenvalue")
        if reference_cutoff <= cutoff:
            raise ValueError(
                "reference_max_eigenvalue must be larger than max_eigenvalue [1/m^2]; "
                "twice max_eigenvalue is a good choice"
            )
    pieces = as_pieces(acquisition, time_step)
    reduced = tuple(_truncated(c, cutoff) for c in compartments)
    reference = compartments
    if math.isfinite(reference_cutoff):
        reference = tuple(_truncated(c, reference_cutoff) for c in compartments)
    counts = tuple(f.num_modes for f in _factors(reduced))
    reference_counts = tuple(f.num_modes for f in _factors(reference))
    if counts == reference_counts:
        raise ValueError(
            "the bases hold no mode between max_eigenvalue and the reference cutoff, so the "
            "error cannot be estimated; compute the bases with a larger cutoff (e.g. 2 x "
            "max_eigenvalue) or lower max_eigenvalue"
        )
    value = signal(list(reduced), pieces, normalize=normalize)
    reference_value = signal(list(reference), pieces, normalize=normalize)
    largest = max(float(f.eigenvalues.detach()[-1]) for f in _factors(reference))
    return SignalWithError(
        signal=value,
        error_estimate=(value - reference_value).abs().detach(),
        reference=reference_value,
        max_eigenvalue=cutoff,
        reference_max_eigenvalue=min(reference_cutoff, largest),
        num_modes=counts,
        reference_num_modes=reference_counts,
    )


def _check_cutoff(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number [1/m^2], got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite eigenvalue [1/m^2], got {value!r}")
    return float(value)


def signal_with_error(
    compartments: Compartment | list[Compartment],
    acquisition,
    *,
    tolerance: float = 1e-3,
    time_step: float | None = None,
    normalize: bool = True,
    propagator: Propagator | None = None,
) -> SignalResult:
    """The signal of the compartments with its error bar (:class:`SignalResult`).

    Interim rule (to be replaced by the acquisition-aware error control of issue 12): the
    signal uses every mode of the bases; the truncation error is bounded by the change of
    the signal when the cutoff is halved, the discretisation error is not yet estimated
    (zero), the propagation error is the propagator's tolerance.

    Args:
        compartments: one ``Compartment`` or a list.
        acquisition: an ``Acquisition`` or ``GradientPieces``.
        tolerance: requested absolute tolerance on the signal [signal unit].
        time_step: longest piece for smooth waveforms [s] (as in :func:`signal`).
        normalize: as in :func:`signal`.
        propagator: as in :func:`signal` (default: chosen by measured cost).
    """
    compartments = as_compartments(compartments)
    pieces = as_pieces(acquisition, time_step)
    propagator = propagator or DenseExponential()
    value = signal(list(compartments), pieces, normalize=normalize, propagator=propagator)
    factors = _factors(compartments)
    cutoffs = tuple(float(f.eigenvalues.detach()[-1]) for f in factors)
    halved = tuple(
        replace(c, domain=replace(c.domain, factors=tuple(_halved(f) for f in c.domain.factors)))
        for c in compartments
    )
    coarse = signal(list(halved), pieces, normalize=normalize, propagator=propagator)
    scale = torch.ones_like(value.real) if normalize else value.abs().max().detach()
    return SignalResult(
        signal=value,
        truncation_error=(value - coarse).abs().detach(),
        discretisation_error=torch.zeros_like(value.real).detach(),
        propagation_error=(propagator.tolerance * scale).detach(),
        tolerance=float(tolerance),
        num_modes=tuple(f.num_modes for f in factors),
        max_eigenvalues=cutoffs,
    )


def _halved(factor: Eigenbasis) -> Eigenbasis:
    return factor.truncated(0.5 * float(factor.eigenvalues.detach()[-1]))
