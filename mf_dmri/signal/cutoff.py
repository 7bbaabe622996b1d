"""The acquisition-aware mode cutoff, and the predicted cost of a basis before it is built.

One policy for every restricted factor (analytic or mesh):

* **a priori**: the cutoff ``lambda_0 = (K / R)^2`` with R the factor's extent (radius,
  half-width) and K the dimensionless cutoff of :func:`apriori_unit_cutoff`, from the
  largest dephasing wavenumber q = gamma |int g dt| the acquisition reaches along the
  factor's axes (q R), the diffusion length over the effective diffusion time
  t_d = b / q^2 (R / sqrt(D t_d)) and the tolerance.  Modes far above q are hardly excited,
  and modes with D lambda t_d >> 1 are damped before the echo, so K grows with q R when the
  domain is small and with R / sqrt(D t_d) when it is large.  That is the start of an
  a-posteriori ladder.  Used alone (``mf.signal``, the batched sweep: ``standalone``), the
  cutoff is also raised until the Gaussian-phase estimate of the modes left out
  (:mod:`mf_dmri.signal.gaussian_tail`) is within the tolerance / ``TAIL_SAFETY``: under
  narrow pulses and slow OGSE the modes above the damping scale still count, and the
  damping rule alone missed 1e-4 by up to 20x (a slow cos-OGSE on a ball,
  tests/test_gaussian_tail.py; the rule's errors: validation/apriori_study.md);
* **a posteriori** (:mod:`mf_dmri.signal.error_estimate`): the cutoff is doubled until the
  signal changes by less than the tolerance.

An analytic factor built without a cutoff carries a :class:`~mf_dmri.eigenbasis.BasisSource`
and is rebuilt at the chosen cutoff; for a shell of single-direction waveforms only its
axial modes (:mod:`mf_dmri.analytic.axial`) are built.  A basis without a source (a mesh, or
an analytic basis with an explicit cutoff) is fixed: it can only be truncated.

Before a basis is built its size is predicted (:func:`factor_cost`: modes, bytes of the
moment matrices and the propagation, seconds); over the memory budget a
:class:`ModeBudgetError` names the budget, the predicted size and the alternatives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mf_dmri.eigenbasis import Eigenbasis
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal.canonical import canonical_gradients
from mf_dmri.signal.gaussian_tail import gaussian_tail_unit_cutoff

#: Default absolute tolerance on the normalised signal, by kind of basis [-].
DEFAULT_TOLERANCE = {"analytic": 1e-4, "mesh": 1e-3}

#: The a-posteriori check: the truncation error at lambda is bounded by this factor times
#: |E(lambda) - E(2 lambda)|: exact for an error falling like lambda^-1 (K^-2), an
#: over-estimate for faster decay (the measured rates are K^-3 to K^-6;
#: validation/coverage_study.md).  The same for analytic, mesh and coupled bases.
ESTIMATE_SAFETY = 2.0

#: Default memory budget of one basis with its propagation [bytes].
DEFAULT_MEMORY_BUDGET = 4 * 2**30

#: Rough dense-algebra rate used to predict times [flop/s] (one CPU core, float64).
_FLOP_RATE = 5e9

#: Calibration of the a-priori rule (see :func:`apriori_unit_cutoff`).
_Q_FACTOR = 8.0
_DAMPING_FACTOR = 7.0
_MIN_UNIT_CUTOFF = 8.0

#: A standalone a-priori cutoff keeps the Gaussian-phase estimate of the modes left out
#: (:mod:`mf_dmri.signal.gaussian_tail`) within tolerance / TAIL_SAFETY.  Where the
#: estimate fell short of the true error it was by 1.4x at most (a slow cos-OGSE on a
#: ball); it over-estimates strongly attenuated signals (it takes E = 1).
TAIL_SAFETY = 2.0


def default_tolerance(factors: list[Eigenbasis], tolerance: float | None) -> float:
    """``tolerance`` [-] checked, or the default: 1e-4 when every factor is analytic, 1e-3
    when one is a mesh (a factor without a source whose label is not an analytic shape)."""
    if tolerance is not None:
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
            raise TypeError(f"tolerance must be a number [-], got {tolerance!r}")
        if not (math.isfinite(tolerance) and 0 < tolerance < 1):
            raise ValueError(
                f"tolerance must be an absolute signal error in (0, 1), got {tolerance!r}"
            )
        return float(tolerance)
    mesh = any(f.source is None and f.label not in _ANALYTIC_LABELS for f in factors)
    return DEFAULT_TOLERANCE["mesh" if mesh else "analytic"]


_ANALYTIC_LABELS = ("interval", "disk", "ball")


class ModeBudgetError(MemoryError):
    """The modes needed for the requested tolerance exceed the memory budget."""


@dataclass(frozen=True)
class FactorCost:
    """Predicted cost of one restricted factor at a cutoff.

    Fields: ``max_eigenvalue`` [1/m^2]; ``num_modes``; ``bytes`` of the moment matrices
    and the propagation work arrays [bytes]; ``seconds`` of dense propagation (a rough
    estimate at 5 Gflop/s) [s]; ``axial``: only the axial modes are built."""

    max_eigenvalue: float
    num_modes: int
    bytes: int
    seconds: float
    axial: bool


def dephasing_scales(pieces: GradientPieces, axes: torch.Tensor) -> tuple[float, float]:
    """(q_max [rad/m], t_d [s]): the largest dephasing wavenumber |P q(t)| over the
    measurements and piece ends, P the projection on ``axes`` (d, 3), and the effective
    diffusion time b_P / q_max^2 of that measurement (b_P = int |P q|^2 dt) [s]."""
    axes = axes.detach().to(pieces.gradients.device)
    with torch.no_grad():
        local_q = pieces.wavevectors().detach() @ axes.T  # (M, P, d)
        q_norm = torch.linalg.vector_norm(local_q, dim=-1).amax(dim=1)  # (M,)
        if float(q_norm.max()) == 0.0:
            return 0.0, 0.0
        row = int(torch.argmax(q_norm))
        projector = axes.T @ axes
        b_local = float(torch.einsum("ab,ab->", pieces.btensors()[row].detach(), projector))
    q_max = float(q_norm[row])
    return q_max, b_local / q_max**2


def apriori_unit_cutoff(q_extent: float, extent_over_length: float, tolerance: float) -> float:
    """Dimensionless cutoff K = R sqrt(lambda_0) of the a-priori rule [-].

    K = max(K_min, min(8 q R, 7 R / sqrt(D t_d)) x (1e-4 / tolerance)^(1/5)), K_min = 8: the
    q-coupling term (modes up to a few times the dephasing wavenumber) and the damping term
    (modes with D lambda t_d > 49 are gone by the echo), whichever is smaller, scaled for
    the tolerance (the truncation error falls like K^-5 in the measured cases); below K_min
    the error is not yet in its asymptotic regime and the doubling check is unreliable.

    Args:
        q_extent: q_max R [-].
        extent_over_length: R / sqrt(D t_d) [-] (inf when there is no diffusion time).
        tolerance: absolute tolerance on the normalised signal [-].
    """
    k_q = _Q_FACTOR * q_extent
    k_d = _DAMPING_FACTOR * extent_over_length
    return max(_MIN_UNIT_CUTOFF, min(k_q, k_d) * (1e-4 / tolerance) ** 0.2)


def apriori_cutoff(
    extent: float,
    diffusivity: float,
    pieces: GradientPieces,
    axes: torch.Tensor,
    tolerance: float,
    *,
    standalone: bool = False,
) -> float:
    """The a-priori cutoff lambda_0 [1/m^2] of a factor of ``extent`` R [m] and
    ``diffusivity`` D [m^2/s] with local ``axes`` (d, 3) under ``pieces``, for an absolute
    ``tolerance`` [-] (see :func:`apriori_unit_cutoff`).

    ``standalone``: the cutoff is used without an a-posteriori check (``mf.signal``, the
    batched sweep); it then also keeps the Gaussian-phase estimate of the modes left out
    (:mod:`mf_dmri.signal.gaussian_tail`) within ``tolerance / TAIL_SAFETY``.  The damping
    term alone misses under narrow pulses and slow OGSE, where the modes above the
    damping scale still count.  The start of an a-posteriori ladder leaves it False: the
    ladder measures the error itself and starts at the cheaper cutoff."""
    q_max, t_d = dephasing_scales(pieces, axes)
    length = math.sqrt(diffusivity * t_d) if t_d > 0 else 0.0
    ratio = extent / length if length > 0 else math.inf
    unit = apriori_unit_cutoff(q_max * extent, ratio, tolerance)
    if standalone and q_max > 0:
        tail = gaussian_tail_unit_cutoff(
            pieces, axes, extent, diffusivity, tolerance / TAIL_SAFETY, _MIN_UNIT_CUTOFF
        )
        unit = max(unit, tail)
    return (unit / extent) ** 2


def quantised_cutoff(max_eigenvalue: float, extent: float) -> float:
    """``max_eigenvalue`` [1/m^2] rounded up so that K = R sqrt(lambda) is on the grid
    2^(k/8) (cached unit bases are reused between nearby sizes)."""
    unit = extent * math.sqrt(max_eigenvalue)
    unit = 2.0 ** (math.ceil(8.0 * math.log2(max(unit, 1.0)) - 1e-9) / 8.0)
    return (unit / extent) ** 2


def single_direction(basis: Eigenbasis, pieces: GradientPieces) -> bool:
    """True when every waveform of ``pieces`` keeps one direction in the frame of ``basis``
    (then an isotropic factor needs only its axial modes)."""
    local = pieces.gradients.detach().to(basis.device) @ basis.axes.detach().T
    return canonical_gradients(local) is not None


def factor_cost(
    num_modes: int, dimension: int, pieces: GradientPieces, max_eigenvalue: float, axial: bool
) -> FactorCost:
    """Predicted memory and time of a factor with ``num_modes`` modes (see
    :class:`FactorCost`): moments d L^2, unit and scaled copies, and about six L x L
    complex work matrices of the propagation, 16 bytes each; ~30 L^3 flops per matrix
    exponential, one per distinct piece and measurement."""
    count = int(num_modes)
    size = 8 * count * count * (2 * dimension + 12)
    waveforms = 1 if axial else pieces.num_measurements
    new_pieces = max(1, pieces.num_pieces)
    seconds = 30.0 * count**3 * waveforms * new_pieces / _FLOP_RATE
    return FactorCost(float(max_eigenvalue), count, size, seconds, axial)


def check_budget(cost: FactorCost, memory_budget: float, label: str) -> None:
    """Raise :class:`ModeBudgetError` if ``cost.bytes`` exceeds ``memory_budget`` [bytes]."""
    if cost.bytes <= memory_budget:
        return
    raise ModeBudgetError(
        f"the {label or 'restricted'} factor needs {cost.num_modes:,} modes (cutoff "
        f"{cost.max_eigenvalue:.3g} 1/m^2) for the requested tolerance: about "
        f"{cost.bytes / 2**30:.3g} GiB and {cost.seconds:.3g} s predicted, over the memory "
        f"budget of {memory_budget / 2**30:.3g} GiB.  Alternatives: a looser tolerance "
        "(tolerance=...), a larger budget (memory_budget=... [bytes]) if the machine has it, "
        "or the time-stepping BTPDE engine (mf_dmri.signal.btpde.btpde_signal) on a mesh; "
        "check the size and units too (a radius of metres instead of micrometres needs "
        "an astronomical number of modes)"
    )


def adapted_factor(
    factor: Eigenbasis,
    diffusivity: float,
    pieces: GradientPieces,
    tolerance: float,
    memory_budget: float,
    level: int = 0,
    *,
    standalone: bool = False,
) -> Eigenbasis:
    """The factor at the a-priori cutoff times 2^level, rebuilt from its source (a fixed
    factor, without one, is truncated by its callers instead); ``standalone``: see
    :func:`apriori_cutoff`.  Raises :class:`ModeBudgetError` before building anything
    over ``memory_budget`` [bytes]."""
    source = factor.source
    if source is None:
        raise ValueError(f"the {factor.label or 'fixed'} factor has no source to rebuild from")
    cutoff = factor_apriori_cutoff(factor, diffusivity, pieces, tolerance, standalone=standalone)
    cutoff *= 2.0**level
    cutoff = quantised_cutoff(cutoff, source.extent)
    axial = factor.isotropic and single_direction(factor, pieces)
    modes = source.predicted_modes(cutoff, axial=axial)
    check_budget(
        factor_cost(modes, factor.dimension, pieces, cutoff, axial), memory_budget, factor.label
    )
    return source.basis(cutoff, factor.axes, axial=axial).to(factor.device)


def factor_apriori_cutoff(
    factor: Eigenbasis,
    diffusivity: float,
    pieces: GradientPieces,
    tolerance: float,
    *,
    standalone: bool = False,
) -> float:
    """The a-priori cutoff lambda_0 [1/m^2] of ``factor`` (:func:`apriori_cutoff` with its
    source's extent, or for a fixed basis the extent estimated from its moments)."""
    source = factor.source
    extent = source.extent if source is not None else _fixed_extent(factor)
    return apriori_cutoff(
        extent, diffusivity, pieces, factor.axes, tolerance, standalone=standalone
    )


def _fixed_extent(factor: Eigenbasis) -> float:
    """Extent R of a fixed basis [m] from the largest variance of a local coordinate over
    the domain: sqrt(5 var), exact for a ball (var = R^2/5), 1.12 R for a disk and 1.29
    half-widths for an interval (conservative: a larger R asks for more modes)."""
    volume = float(factor.volume.detach())
    moments = factor.moments.detach()
    integrals = factor.mode_integrals.detach()
    # <x_k^2> over the uniform density: |Q_k u|^2 / V (Q_k u are the coefficients of x_k)
    second = (torch.einsum("kij,j->ki", moments, integrals) ** 2).sum(dim=1) / volume
    mean = torch.einsum("kij,i,j->k", moments, integrals, integrals) / volume
    variance = (second - mean**2).clamp(min=0.0)
    return float(torch.sqrt(5.0 * variance.max()))
