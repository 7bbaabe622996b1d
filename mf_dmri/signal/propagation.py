"""Matrix-formalism propagation over piecewise-constant gradients, batched in torch.

For a restricted factor with Neumann eigen-data (Lambda, Q_k, u = integrals of the modes,
volume V) the Bloch-Torrey equation dm/dt = D Laplace m - i gamma g(t).x m becomes, in the
eigenbasis, dc/dt = -(D Lambda + i gamma g(t).Q) c, so that over constant pieces

    E = u^T exp(-t_P A_P) ... exp(-t_1 A_1) u / V,   A_p = D Lambda + i gamma g_p.Q

(Callaghan 1997, J. Magn. Reson. 129, 74; Barzykin 1999, J. Magn. Reson. 139, 342;
Grebenkov 2007, Rev. Mod. Phys. 79, 1077).  This module plans the propagation (distinct
waveforms, exact reductions, piece plans: pieces with zero gradient are diagonal, a piece
equal to an earlier one is reused, and a piece equal to the negative of an earlier one, the
refocused lobe, is its complex conjugate) and hands batches to a
:class:`~mf_dmri.signal.propagators.Propagator`, which computes the products of
exponentials (:mod:`mf_dmri.signal.dense`, :mod:`mf_dmri.signal.krylov`: the one passed
in, or the one chosen by :func:`~mf_dmri.signal.propagators.choose_propagator`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mf_dmri.eigenbasis import Eigenbasis
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal.canonical import canonical_gradients, distinct_waveforms, hidden_directions
from mf_dmri.signal.dense import DenseExponential
from mf_dmri.signal.parity import plan_parity
from mf_dmri.signal.propagators import (
    PiecePlan,
    PropagationBatch,
    Propagator,
    choose_propagator,
    hardest_waveform,
    needs_derivatives,
    probed_choice,
)
from mf_dmri.signal.reduction import reduced_data

#: Default memory budget for one batch of propagation [bytes].
DEFAULT_CHUNK_BYTES = 512 * 2**20


def plan_pieces(durations: torch.Tensor, local_gradients: torch.Tensor) -> list[PiecePlan]:
    """Classify each piece (see the module docstring); comparisons are exact, on values.

    When derivatives are taken with respect to the gradients, a piece that is zero in value
    is propagated in full ('new', never matched): its propagator's dependence on its
    gradient is what the derivatives at g = 0 (Hessians wrt the amplitude) need.  Pieces
    equal or opposite in value to an earlier one are taken to be so identically (a waveform
    scaled by one amplitude per measurement, as :class:`~mf_dmri.sequences.Acquisition`
    builds it)."""
    tau = durations.detach()
    grad = local_gradients.detach()
    differentiated = local_gradients.requires_grad
    plans: list[PiecePlan] = []
    for index in range(tau.numel()):
        g = grad[:, index]
        if not bool(g.any()):
            plans.append(PiecePlan("new" if differentiated else "zero", index))
            continue
        plan = PiecePlan("new", index)
        for earlier, earlier_plan in enumerate(plans):
            if earlier_plan.kind != "new" or bool(tau[earlier] != tau[index]):
                continue
            if not bool(grad[:, earlier].any()):
                continue
            if torch.equal(grad[:, earlier], g):
                plan = PiecePlan("same", earlier)
                break
            if torch.equal(grad[:, earlier], -g):
                plan = PiecePlan("conj", earlier)
                break
        plans.append(plan)
    return plans


@dataclass(frozen=True)
class FactorPlan:
    """Everything about one restricted factor under one acquisition that does not depend on
    the diffusivity.  Built by :func:`prepare_factor`, evaluated for any diffusivities by
    :func:`evaluate_factor`.

    Fields: ``basis``; piece ``durations`` (P,) [s]; the distinct waveforms propagated,
    ``local`` (W, P, d) [T/m] in the basis frame; their piece ``plans``; eigen-data
    ``data`` = (eigenvalues [1/m^2], moments [m], integrals), each of leading size 1
    (shared) or W; ``gamma`` [rad/(s T)]; ``inverse`` (M,), the row of ``local`` that each
    measurement uses (None: row m is measurement m); the basis' stiffness ``coupling``;
    ``parity`` (W or 1, L) for real-arithmetic propagation, or None."""

    basis: Eigenbasis
    durations: torch.Tensor
    local: torch.Tensor
    plans: tuple[PiecePlan, ...]
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    gamma: float
    inverse: torch.Tensor | None
    coupling: torch.Tensor | None
    parity: torch.Tensor | None = None


def prepare_factor(
    basis: Eigenbasis,
    pieces: GradientPieces,
    *,
    reduce: bool = True,
    subspaces: dict | None = None,
) -> FactorPlan:
    """Plan the propagation of one restricted factor (see :class:`FactorPlan`).

    Measurements with the same waveform (to round-off, ``canonical.distinct_rows``) are
    propagated once, unless gradients are needed with respect to the gradients.  An
    isotropic basis (analytic disk, ball) whose waveforms each use one direction needs one
    reduced basis for all measurements, and the waveforms are compared in canonical form
    (a shell is one waveform); otherwise each waveform gets the exact reduction of the basis
    to the subspace it reaches (``mf_dmri.signal.reduction``), or the full basis when it
    has a stiffness coupling or nothing is gained.  Reflection-symmetric factors are
    propagated in real arithmetic (``mf_dmri.signal.parity``).

    Args:
        basis: eigen-data of the factor.
        pieces: the acquisition's piecewise-constant gradients.
        reduce: use the exact reductions (the result is the same).
        subspaces: optional caller-owned memo of reachable subspaces of this ``basis``
            (``reduction.reduced_data``), to share them between acquisitions.
    """
    device = basis.device
    durations = pieces.durations.to(device)
    local = pieces.gradients.to(device) @ basis.axes.T  # (M, P, d)
    coupling = basis.stiffness_coupling
    full = (basis.eigenvalues[None], basis.moments[None], basis.mode_integrals[None])
    data = None
    canonical = canonical_gradients(local) if reduce and basis.isotropic else None
    isotropic = canonical is not None and coupling is None
    local = canonical if isotropic else local
    local, inverse = distinct_waveforms(local, isotropic)
    if isotropic:
        first_axis = torch.zeros(1, 1, basis.dimension, dtype=local.dtype, device=device)
        first_axis[..., 0] = 1.0
        data = reduced_data(basis, first_axis, subspaces)
    elif reduce and coupling is None:
        data = reduced_data(basis, local, subspaces)
    data = data or full
    plans = tuple(plan_pieces(durations, local))
    parity = plan_parity(local, data, coupling)
    gamma = pieces.gyromagnetic_ratio
    return FactorPlan(basis, durations, local, plans, data, gamma, inverse, coupling, parity)


def evaluate_factor(
    plan: FactorPlan,
    diffusivity: torch.Tensor,
    *,
    time_course: bool = False,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    propagator: Propagator | None = None,
) -> torch.Tensor:
    """Normalised signal of a planned factor for one diffusivity [m^2/s] (scalar): complex
    (M,), or (M, P) after every piece if ``time_course``; for a vector of diffusivities
    (B,): (B, M) or (B, M, P).  All diffusivities x waveforms go through one batched
    propagation by ``propagator`` (default: :func:`choose_propagator`), split to respect
    ``max_chunk_bytes`` [bytes]."""
    rates = torch.as_tensor(diffusivity, dtype=plan.durations.dtype, device=plan.local.device)
    values = rates.reshape(-1)
    count_b, count_w = values.numel(), plan.local.shape[0]
    num_modes = plan.data[0].shape[-1]
    num_new = sum(p.kind == "new" for p in plan.plans)
    propagator = planned_propagator(plan, count_b, propagator, rates=rates)
    step = propagator.rows_per_batch(num_modes, num_new, max_chunk_bytes)
    outputs = []
    for start in range(0, count_b * count_w, step):
        stop = min(start + step, count_b * count_w)
        if count_b == 1:
            rows, rate = slice(start, stop), (rates if rates.ndim == 0 else values[0])
        else:
            flat = torch.arange(start, stop, device=plan.local.device)
            rows, rate = flat % count_w, values[flat // count_w][:, None]
        outputs.append(propagator.propagate(_batch(plan, rows, rate), time_course=time_course))
    result = torch.cat(outputs, dim=0) / plan.basis.volume
    result = result.reshape((count_b, count_w) + result.shape[1:])
    if plan.inverse is not None:
        result = result[:, plan.inverse]
    return result if rates.ndim else result[0]


def _batch(plan: FactorPlan, rows, rate: torch.Tensor) -> PropagationBatch:
    """The :class:`PropagationBatch` of the waveforms ``rows`` (a slice or an index
    tensor) of ``plan`` at the diffusivity ``rate`` [m^2/s] (scalar or (W, 1))."""
    eigenvalues, moments, integrals = (x if x.shape[0] == 1 else x[rows] for x in plan.data)
    parity = plan.parity
    return PropagationBatch(
        eigenvalues=eigenvalues,
        moments=moments,
        initial=integrals,
        readout=integrals,
        diffusivity=rate,
        durations=plan.durations,
        gradients=plan.local[rows],
        plans=plan.plans,
        gamma=plan.gamma,
        coupling=plan.coupling,
        parity=parity if parity is None or parity.shape[0] == 1 else parity[rows],
    )


def planned_propagator(
    plan: FactorPlan,
    num_diffusivities: int = 1,
    propagator: Propagator | None = None,
    *,
    rates: torch.Tensor | None = None,
) -> Propagator:
    """``propagator``, or the one :func:`choose_propagator` picks for ``plan`` (its modes
    after reduction and its new pieces) with ``num_diffusivities`` rows per waveform,
    counting the backward when autograd records ``rates`` [m^2/s] or the plan's data.
    Derivatives at a zero waveform (``canonical.hidden_directions``) take the dense
    exponential: a Krylov space built from the values sees no gradient there and drops
    the dependence (measured: Hessian 0 instead of -29.5 at g = 0 on a 230-mode ball)."""
    if propagator is not None:
        return propagator
    if hidden_directions(plan.local):
        return DenseExponential()
    num_new = sum(p.kind == "new" for p in plan.plans)
    rows = num_diffusivities * plan.local.shape[0]
    differentiated = needs_derivatives(rates, plan.local, plan.durations, plan.coupling, *plan.data)
    chosen = choose_propagator(
        plan.data[0].shape[-1], rows, num_new, plan.local.device, differentiated=differentiated
    )
    if rates is None:
        return chosen
    hardest = hardest_waveform(plan.local, plan.durations)
    rate = rates.detach().reshape(-1).max()
    return probed_choice(chosen, lambda: _batch(plan, slice(hardest, hardest + 1), rate))


def factor_signal(
    basis: Eigenbasis,
    diffusivity: torch.Tensor,
    pieces: GradientPieces,
    *,
    time_course: bool = False,
    reduce: bool = True,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    propagator: Propagator | None = None,
) -> torch.Tensor:
    """Normalised signal of one restricted factor, complex (M,) at the echo, or (M, P) at
    the end of every piece if ``time_course``; with a vector of diffusivities (B,), one
    row per diffusivity: (B, M) or (B, M, P).

    Args:
        basis: eigen-data of the factor.
        diffusivity: diffusion coefficient [m^2/s], scalar or (B,).
        pieces: the acquisition's piecewise-constant gradients.
        time_course: return the signal after every piece instead of at the echo only.
        reduce: restrict each measurement to the exactly reachable subspace of the basis
            when that saves work (see ``mf_dmri.signal.reduction``); the result is the same.
        max_chunk_bytes: memory budget of one batch of propagation [bytes].
        propagator: the :class:`~mf_dmri.signal.propagators.Propagator` (default: chosen
            by :func:`~mf_dmri.signal.propagators.choose_propagator`).
    """
    plan = prepare_factor(basis, pieces, reduce=reduce)
    return evaluate_factor(
        plan,
        diffusivity,
        time_course=time_course,
        max_chunk_bytes=max_chunk_bytes,
        propagator=propagator,
    )
