"""Matrix-formalism propagation over piecewise-constant gradients, batched in torch.

For a restricted factor with Neumann eigen-data (Lambda, Q_k, u = integrals of the modes,
volume V) the Bloch-Torrey equation dm/dt = D Laplace m - i gamma g(t).x m becomes, in the
eigenbasis, dc/dt = -(D Lambda + i gamma g(t).Q) c, so that over constant pieces

    E = u^T exp(-t_P A_P) ... exp(-t_1 A_1) u / V,   A_p = D Lambda + i gamma g_p.Q

(Callaghan 1997, J. Magn. Reson. 129, 74; Barzykin 1999, J. Magn. Reson. 139, 342;
Grebenkov 2007, Rev. Mod. Phys. 79, 1077).  All measurements share one batched
``torch.linalg.matrix_exp`` per distinct piece: pieces with zero gradient are diagonal,
a piece equal to an earlier one reuses its exponential, and a piece equal to the negative of
an earlier one (the refocused lobe) reuses its complex conjugate (Lambda and Q are real).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mf_dmri._checks import CDTYPE
from mf_dmri.eigenbasis import Eigenbasis
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal.reduction import reduced_data

#: Default memory budget for one batch of complex L x L matrices [bytes].
DEFAULT_CHUNK_BYTES = 512 * 2**20


@dataclass(frozen=True)
class _PiecePlan:
    """How piece ``index`` is propagated: 'zero', 'new', 'same' or 'conj' of ``source``."""

    kind: str
    source: int


def plan_pieces(durations: torch.Tensor, local_gradients: torch.Tensor) -> list[_PiecePlan]:
    """Classify each piece (see the module docstring); comparisons are exact, on values."""
    tau = durations.detach()
    grad = local_gradients.detach()
    plans: list[_PiecePlan] = []
    for index in range(tau.numel()):
        g = grad[:, index]
        if not bool(g.any()):
            plans.append(_PiecePlan("zero", index))
            continue
        plan = _PiecePlan("new", index)
        for earlier, earlier_plan in enumerate(plans):
            if earlier_plan.kind != "new" or bool(tau[earlier] != tau[index]):
                continue
            if torch.equal(grad[:, earlier], g):
                plan = _PiecePlan("same", earlier)
                break
            if torch.equal(grad[:, earlier], -g):
                plan = _PiecePlan("conj", earlier)
                break
        plans.append(plan)
    return plans


def chunk_size(num_modes: int, num_new: int, max_bytes: int) -> int:
    per_measurement = 16 * num_modes * num_modes * max(num_new, 1) * 3
    return max(1, max_bytes // per_measurement)


def factor_signal(
    basis: Eigenbasis,
    diffusivity: torch.Tensor,
    pieces: GradientPieces,
    *,
    time_course: bool = False,
    reduce: bool = True,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> torch.Tensor:
    """Normalised signal of one restricted factor, complex (M,) at the echo, or (M, P) at
    the end of every piece if ``time_course``.

    Args:
        basis: eigen-data of the factor.
        diffusivity: diffusion coefficient [m^2/s].
        pieces: the acquisition's piecewise-constant gradients.
        time_course: return the signal after every piece instead of at the echo only.
        reduce: restrict each measurement to the exactly reachable subspace of the basis
            when that saves work (see ``mf_dmri.signal.reduction``); the result is the same.
        max_chunk_bytes: memory budget of one batch of matrix exponentials [bytes].
    """
    device = basis.device
    durations = pieces.durations.to(device)
    local = pieces.gradients.to(device) @ basis.axes.T  # (M, P, d)
    if reduce and basis.isotropic:
        canonical = canonical_gradients(local)
        if canonical is not None:
            return _isotropic_signal(
                basis, diffusivity, durations, canonical, pieces, time_course, max_chunk_bytes
            )
    plans = plan_pieces(durations, local)
    coupling = basis.stiffness_coupling
    data = reduced_data(basis, local) if reduce and coupling is None else None
    if data is None:
        data = (basis.eigenvalues[None], basis.moments[None], basis.mode_integrals[None])
    num_new = sum(p.kind == "new" for p in plans)
    chunk = chunk_size(data[0].shape[-1], num_new, max_chunk_bytes)
    outputs = []
    for start in range(0, local.shape[0], chunk):
        stop = start + chunk
        part = tuple(x if x.shape[0] == 1 else x[start:stop] for x in data)
        outputs.append(
            propagate(
                *part,
                diffusivity,
                durations,
                local[start:stop],
                plans,
                pieces.gyromagnetic_ratio,
                time_course,
                coupling,
            )
        )
    return torch.cat(outputs, dim=0) / basis.volume


def canonical_gradients(local: torch.Tensor) -> torch.Tensor | None:
    """For waveforms whose pieces are all parallel (rank <= 1 per measurement), the local
    gradients rotated onto the first local axis, (M, P, d); None otherwise.

    The component along the measurement's direction n is g . n (no square root, so no NaN
    derivative at g = 0); for an isotropic basis the signal depends on nothing else, and
    its derivative with respect to the components perpendicular to n is zero."""
    values = local.detach()
    directions = torch.zeros(
        values.shape[0], values.shape[2], dtype=values.dtype, device=values.device
    )
    directions[:, 0] = 1.0
    for m in range(values.shape[0]):
        rows = values[m][values[m].abs().sum(-1) > 0]
        if rows.shape[0] == 0:
            continue
        reference = rows[torch.argmax(torch.linalg.vector_norm(rows, dim=-1))]
        unit = reference / torch.linalg.vector_norm(reference)
        residual = rows - (rows @ unit)[:, None] * unit
        if float(residual.abs().max()) > 1e-12 * float(rows.abs().max()):
            return None
        directions[m] = unit
    along = torch.einsum("mpd,md->mp", local, directions)
    canonical = torch.zeros_like(local)
    canonical[..., 0] = along
    return canonical


def _isotropic_signal(
    basis: Eigenbasis,
    diffusivity: torch.Tensor,
    durations: torch.Tensor,
    canonical: torch.Tensor,
    pieces: GradientPieces,
    time_course: bool,
    max_chunk_bytes: int,
) -> torch.Tensor:
    """Signal of an isotropic basis: one reduced basis for the first axis serves every
    measurement; identical measurements are computed once unless gradients are needed
    with respect to the gradient samples."""
    unique_index, inverse = None, None
    if not canonical.requires_grad:
        rows = canonical[..., 0]
        _, inverse, counts = torch.unique(rows, dim=0, return_inverse=True, return_counts=True)
        if counts.numel() < rows.shape[0]:
            first = torch.full(
                (counts.numel(),), rows.shape[0], dtype=torch.long, device=rows.device
            )
            positions = torch.arange(rows.shape[0], device=rows.device)
            unique_index = first.scatter_reduce(0, inverse, positions, reduce="amin")
            canonical = canonical[unique_index]
    plans = plan_pieces(durations, canonical)
    first_axis = torch.zeros(1, 1, basis.dimension, dtype=canonical.dtype, device=canonical.device)
    first_axis[..., 0] = 1.0
    data = reduced_data(basis, first_axis)
    if data is None:
        data = (basis.eigenvalues[None], basis.moments[None], basis.mode_integrals[None])
    num_new = sum(p.kind == "new" for p in plans)
    chunk = chunk_size(data[0].shape[-1], num_new, max_chunk_bytes)
    outputs = [
        propagate(
            *data,
            diffusivity,
            durations,
            canonical[start : start + chunk],
            plans,
            pieces.gyromagnetic_ratio,
            time_course,
        )
        for start in range(0, canonical.shape[0], chunk)
    ]
    result = torch.cat(outputs, dim=0) / basis.volume
    return result if unique_index is None else result[inverse]


def propagate(
    eigenvalues: torch.Tensor,
    moments: torch.Tensor,
    integrals: torch.Tensor,
    diffusivity: torch.Tensor,
    durations: torch.Tensor,
    local: torch.Tensor,
    plans: list[_PiecePlan],
    gamma: float,
    time_course: bool,
    coupling: torch.Tensor | None = None,
    readout: torch.Tensor | None = None,
) -> torch.Tensor:
    """Propagate a batch; eigen-data either shared (leading size 1) or per measurement.

    Returns ``readout^T c(t)`` (M,) at the echo, or (M, P) after every piece, where the
    state starts at ``c(0) = integrals`` and ``readout`` defaults to ``integrals`` (uniform
    spin density read out over the whole domain).  ``eigenvalues`` are multiplied by
    ``diffusivity``: pass rates [1/s] with ``diffusivity = 1`` for operators whose
    eigenvalues already include it (permeable or relaxing systems).

    ``coupling`` (L, L), zero in value, is added to diag(eigenvalues) in every generator;
    on zero-gradient pieces its first-order effect -tau D exp(-tau D lambda) W (exact for a
    W supported on exactly degenerate clusters) is added so that its gradient flows."""
    relaxation = diffusivity * eigenvalues  # (B, L) [1/s]
    state = integrals.to(CDTYPE).expand(local.shape[0], -1)  # (M, L)
    u = (integrals if readout is None else readout).to(CDTYPE)
    exponentials: dict[int, torch.Tensor] = {}
    history = []
    for index, plan in enumerate(plans):
        tau = durations[index]
        if plan.kind == "zero":
            decay = torch.exp(-tau * relaxation).to(CDTYPE)
            if coupling is None:
                state = state * decay
            else:
                mixed = torch.einsum("ij,mj->mi", coupling.to(CDTYPE), state)
                state = decay * (state - tau * diffusivity * mixed)
        else:
            if plan.kind == "new":
                phase = torch.einsum(
                    "mk,mkij->mij", local[:, index], moments.expand(local.shape[0], -1, -1, -1)
                )
                generator = torch.diag_embed(relaxation).to(CDTYPE) + 1j * gamma * phase
                if coupling is not None:
                    generator = generator + (diffusivity * coupling).to(CDTYPE)
                exponentials[index] = torch.linalg.matrix_exp(-tau * generator)
            propagator = exponentials[plan.source]
            if plan.kind == "conj":
                propagator = propagator.conj()
            state = torch.einsum("mij,mj->mi", propagator, state)
        if time_course:
            history.append((state * u).sum(-1))
    if time_course:
        return torch.stack(history, dim=1)
    return (state * u).sum(-1)
