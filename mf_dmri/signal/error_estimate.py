"""A-posteriori estimate of the matrix-formalism truncation error.

The MF keeps the Neumann eigenmodes up to a cutoff lambda_c.  Its truncation error at
lambda_c is estimated by the change of the signal when the cutoff is raised to a reference
lambda_ref > lambda_c (default: every mode of the bases passed in):

    error_estimate = |E(lambda_c) - E(lambda_ref)|,

which equals the true error |E(lambda_c) - E(inf)| up to the (smaller) error of
E(lambda_ref) when the MF converges fast in the cutoff.  Compute the bases once at the
reference cutoff (4 lambda_c, i.e. the length scale halved: docs/btpde.md measures 2
lambda_c as unreliable on meshes); the signal at lambda_c uses the same bases truncated, so
no second eigen-solve is needed.

:func:`signal_with_error` is the error bar of every signal: the acquisition-aware cutoff of
:mod:`mf_dmri.signal.cutoff` checked a posteriori by doubling it, with the truncation,
discretisation and propagation errors of :class:`~mf_dmri.signal.result.SignalResult`.  The estimate
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
from mf_dmri.signal.compartment import Compartment, as_compartments, compartment_weights
from mf_dmri.signal.cutoff import DEFAULT_MEMORY_BUDGET, adapted_factor, default_tolerance
from mf_dmri.signal.dense import DenseExponential
from mf_dmri.signal.discretisation import discretisation_error
from mf_dmri.signal.propagation import factor_signal
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
            ``mesh_eigenbasis(..., max_eigenvalue=4 * max_eigenvalue)``).
        acquisition: an ``Acquisition`` or ``GradientPieces``.
        max_eigenvalue: the cutoff lambda_c of the reported signal [1/m^2].
        reference_max_eigenvalue: the larger reference cutoff [1/m^2]; None uses every
            mode of the bases.
        time_step: longest piece for smooth waveforms [s] (as in :func:`signal`).
        normalize: as in :func:`signal`.

    Returns:
        :class:`SignalWithError`.  The estimate tracks the true error within the factor
        stated in docs/btpde.md when the reference cutoff is four times lambda_c.
    """
    compartments = as_compartments(compartments)
    cutoff = _check_cutoff(max_eigenvalue, "max_eigenvalue")
    reference_cutoff = math.inf
    if reference_max_eigenvalue is not None:
        reference_cutoff = _check_cutoff(reference_max_eigenvalue, "reference_max_eigenvalue")
        if reference_cutoff <= cutoff:
            raise ValueError(
                "reference_max_eigenvalue must be larger than max_eigenvalue [1/m^2]; "
                "four times max_eigenvalue is a good choice"
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
            "error cannot be estimated; compute the bases with a larger cutoff (e.g. 4 x "
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


#: The truncation error at lambda is bounded by this factor times |E(lambda) - E(2 lambda)|:
#: exact for an error falling like lambda^-1 (K^-2), an over-estimate for faster decay
#: (the measured rates are K^-3 to K^-6; validation/coverage_study.md).
ESTIMATE_SAFETY = 2.0


def signal_with_error(
    compartments: Compartment | list[Compartment],
    acquisition,
    *,
    tolerance: float | None = None,
    time_step: float | None = None,
    normalize: bool = True,
    propagator: Propagator | None = None,
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    max_doublings: int = 6,
) -> SignalResult:
    """The signal of the compartments with its error bar (:class:`SignalResult`).

    Each restricted factor starts at the a-priori cutoff lambda_0 of
    :mod:`mf_dmri.signal.cutoff` and is checked a posteriori: its cutoff is doubled until
    the factor's signal changes by at most its share of ``tolerance`` (the tolerance split
    evenly over the factors).  The signal is reported at 2 lambda_j, the finer cutoff of
    the accepted pair; its truncation error is bounded by ESTIMATE_SAFETY times the change
    |E(lambda_j) - E(2 lambda_j)| (a bound on the coarser value, so a conservative one on
    the reported value), weighted like the signal (|E| <= 1 per factor, so errors of
    factors and compartments add).  An
    analytic factor is rebuilt at each cutoff; a fixed basis (a mesh) is truncated, and
    when it holds fewer than 2 lambda_0 the pair (lambda_max / 2, lambda_max) is used.  The
    discretisation error of a mesh factor is bounded by P1 versus P2 on its mesh
    (:mod:`mf_dmri.signal.discretisation`; zero for closed forms); the propagation error
    is the propagator's tolerance.
    If the bar exceeds ``tolerance`` (a fixed basis too small, or ``max_doublings``
    reached) the result says so: ``within_tolerance`` is False.

    Args:
        compartments: one ``Compartment`` or a list.
        acquisition: an ``Acquisition`` or ``GradientPieces``.
        tolerance: requested absolute tolerance on the signal [signal unit] (default 1e-4
            for analytic shapes, 1e-3 with a mesh).
        time_step: longest piece for smooth waveforms [s] (as in :func:`signal`).
        normalize: as in :func:`signal`.
        propagator: as in :func:`signal` (default: chosen by measured cost).
        memory_budget: largest predicted memory of one basis [bytes]; a cutoff beyond it
            raises ``ModeBudgetError``.
        max_doublings: most doublings of a factor's cutoff.
    """
    compartments = as_compartments(compartments)
    pieces = as_pieces(acquisition, time_step)
    factors = _factors(compartments)
    tol = default_tolerance(factors, tolerance)
    share = tol / max(len(factors), 1)
    checked = [
        [
            _checked_factor(
                f, c.diffusivity, pieces, share, memory_budget, propagator, max_doublings
            )
            for f in c.domain.factors
        ]
        for c in compartments
    ]
    fixed = tuple(
        replace(c, domain=replace(c.domain, factors=tuple(item[0] for item in row)))
        for c, row in zip(compartments, checked)
    )
    value = signal(list(fixed), pieces, normalize=normalize, propagator=propagator)
    scales = _compartment_scales(compartments, pieces, normalize)
    zero = torch.zeros_like(value.real).detach()
    truncation = sum((s * sum(item[1] for item in row) for s, row in zip(scales, checked)), zero)
    discretisation = sum(
        (s * sum(item[2] for item in row) for s, row in zip(scales, checked)), zero
    )
    used = propagator.tolerance if propagator is not None else DenseExponential().tolerance
    scale = torch.ones_like(value.real) if normalize else value.abs().max().detach()
    adapted = _factors(fixed)
    return SignalResult(
        signal=value,
        truncation_error=truncation.detach(),
        discretisation_error=discretisation.detach(),
        propagation_error=(used * scale).detach(),
        tolerance=tol,
        num_modes=tuple(f.num_modes for f in adapted),
        max_eigenvalues=tuple(float(f.eigenvalues.detach()[-1]) for f in adapted),
    )


def _compartment_scales(compartments, pieces, normalize: bool) -> list[torch.Tensor]:
    """|weight| of each compartment in the signal (divided by the normalisation)."""
    device = compartments[0].domain.free_axes.device
    weights, reference = compartment_weights(compartments, pieces.echo_time.to(device))
    norm = float(reference.detach()) if normalize else 1.0
    return [abs(float(torch.as_tensor(w).detach())) / norm for w in weights]


def _checked_factor(
    factor: Eigenbasis,
    diffusivity: torch.Tensor,
    pieces,
    share: float,
    memory_budget: float,
    propagator: Propagator | None,
    max_doublings: int,
) -> tuple[Eigenbasis, torch.Tensor, torch.Tensor]:
    """(basis at the accepted cutoff, its truncation-error bound (M,), its discretisation
    error (M,)) of one factor (see :func:`signal_with_error`)."""
    rate = float(diffusivity.detach())
    pairs = _cutoff_pairs(factor, rate, pieces, share, memory_budget, max_doublings)
    values: dict[int, torch.Tensor] = {}

    def evaluate(basis: Eigenbasis) -> torch.Tensor:
        key = id(basis)
        if key not in values:
            with torch.no_grad():
                values[key] = factor_signal(
                    basis, diffusivity.detach(), pieces, propagator=propagator
                )
        return values[key]

    for coarse, fine in pairs:
        error = ESTIMATE_SAFETY * (evaluate(coarse) - evaluate(fine)).abs()
        if float(error.max()) <= share:
            break
    # Report the finer of the pair: the change bounds the coarse error (ESTIMATE_SAFETY),
    # and the fine value, closer to the limit, stays inside that bound even where one
    # doubling adds little (a mode that couples weakly, the next ones more).
    discretisation = _discretisation_error(factor, fine, rate, pieces)
    return fine, error, discretisation


def _cutoff_pairs(factor, rate, pieces, share, memory_budget, max_doublings):
    """Yield (coarse, fine) bases at lambda_0 2^j and lambda_0 2^(j+1), j = 0, 1, ..."""
    previous = adapted_factor(factor, rate, pieces, share, memory_budget, 0)
    if previous is None:
        yield _largest_pair(factor)
        return
    for level in range(1, max_doublings + 1):
        following = adapted_factor(factor, rate, pieces, share, memory_budget, level)
        if following is None:
            if level == 1:
                yield _largest_pair(factor)
            return
        yield previous, following
        previous = following


def _largest_pair(factor: Eigenbasis) -> tuple[Eigenbasis, Eigenbasis]:
    """(the fixed basis truncated at half its largest eigenvalue, the whole basis)."""
    coarse = factor.truncated(0.5 * float(factor.eigenvalues.detach()[-1]))
    if coarse.num_modes == factor.num_modes:
        raise ValueError(
            f"the {factor.label or 'mesh'} basis holds no mode above half its largest "
            "eigenvalue, so its truncation error cannot be estimated; compute it with a "
            "larger cutoff (a smaller length_scale)"
        )
    return coarse, factor


def _discretisation_error(factor, accepted, rate, pieces) -> torch.Tensor:
    """The discretisation error of the accepted factor [signal unit]: P1 versus P2 on the
    factor's mesh (:mod:`mf_dmri.signal.discretisation`); zero for closed forms."""
    return discretisation_error(factor, accepted, rate, pieces)
