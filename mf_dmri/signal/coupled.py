"""Matrix-formalism signal of a coupled (permeable and/or relaxing) system.

With the eigen-data of :class:`~mf_dmri.coupled.CoupledBasis` the echo signal is

    E = readout^T exp(-t_P G_P) ... exp(-t_1 G_1) initial / reference,
    G_p = diag(rates) + coupling + i gamma g_p . S,

where the rates already contain diffusion, exchange and (bulk and surface) relaxation, so
T2 decay is inside E and is not applied again as exp(-TE/T2).  A 2-D basis (a mesh of a
cross-section) describes a planar domain: it has no diffusion along its normal, so gradients
must lie in its plane (checked).
"""

from __future__ import annotations

import torch

from mf_dmri.coupled import CoupledBasis
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal.canonical import hidden_directions
from mf_dmri.signal.dense import DenseExponential
from mf_dmri.signal.propagation import DEFAULT_CHUNK_BYTES, plan_pieces
from mf_dmri.signal.propagators import (
    PropagationBatch,
    Propagator,
    choose_propagator,
    hardest_waveform,
    needs_derivatives,
    probed_choice,
)


def coupled_signal(
    basis: CoupledBasis,
    pieces: GradientPieces,
    *,
    normalize: bool = True,
    time_course: bool = False,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    propagator: Propagator | None = None,
) -> torch.Tensor:
    """Signal of a coupled basis, complex128 (M,) at the echo or (M, P) after every piece.

    Args:
        basis: the coupled eigen-data (e.g. :func:`mf_dmri.fem.permeable_eigenbasis`).
        pieces: the acquisition's piecewise-constant gradients.
        normalize: divide by ``reference = r^T M m0`` (dimensionless); otherwise the
            signal is ``r^T M m(TE)`` [m^d].
        time_course: return the signal at the end of every piece.
        max_chunk_bytes: memory budget of one batch of propagation [bytes].
        propagator: the :class:`~mf_dmri.signal.propagators.Propagator` (default: chosen
            by :func:`~mf_dmri.signal.propagators.choose_propagator`).
    """
    device = basis.device
    durations = pieces.durations.to(device)
    gradients = pieces.gradients.to(device)
    local = gradients @ basis.axes.T  # (M, P, d)
    _check_in_plane(gradients.detach(), local.detach(), basis.axes.detach())
    plans = tuple(plan_pieces(durations, local))
    num_new = sum(p.kind == "new" for p in plans)
    propagator = coupled_propagator(basis, pieces, propagator)
    chunk = propagator.rows_per_batch(basis.num_modes, num_new, max_chunk_bytes)
    outputs = [
        propagator.propagate(
            _coupled_batch(basis, pieces, local[start : start + chunk], plans),
            time_course=time_course,
        )
        for start in range(0, local.shape[0], chunk)
    ]
    result = torch.cat(outputs, dim=0)
    return result / basis.reference if normalize else result


def coupled_propagator(
    basis: CoupledBasis, pieces: GradientPieces, propagator: Propagator | None = None
) -> Propagator:
    """``propagator``, or the one :func:`coupled_signal` chooses for ``basis`` and
    ``pieces`` (:func:`~mf_dmri.signal.propagators.choose_propagator`)."""
    if propagator is not None:
        return propagator
    local = pieces.gradients.to(basis.device) @ basis.axes.T
    if hidden_directions(local):  # derivatives at g = 0: see propagation.planned_propagator
        return DenseExponential()
    plans = plan_pieces(pieces.durations.to(basis.device), local)
    num_new = sum(p.kind == "new" for p in plans)
    differentiated = needs_derivatives(
        local, pieces.durations, basis.rates, basis.moments, basis.initial, basis.readout
    )
    chosen = choose_propagator(
        basis.num_modes, local.shape[0], num_new, basis.device, differentiated=differentiated
    )
    hardest = hardest_waveform(local, pieces.durations.to(basis.device))
    row = local[hardest : hardest + 1]
    return probed_choice(chosen, lambda: _coupled_batch(basis, pieces, row, plans))


def _coupled_batch(basis: CoupledBasis, pieces: GradientPieces, local, plans) -> PropagationBatch:
    """The :class:`PropagationBatch` of the waveforms ``local`` (W, P, d) [T/m] in the
    basis' frame, with the piece ``plans``."""
    return PropagationBatch(
        eigenvalues=basis.rates[None],
        moments=basis.moments[None],
        initial=basis.initial[None],
        readout=basis.readout[None],
        diffusivity=torch.ones((), dtype=basis.rates.dtype, device=basis.device),
        durations=pieces.durations.to(basis.device),
        gradients=local,
        plans=plans,
        gamma=pieces.gyromagnetic_ratio,
        coupling=basis.coupling,
    )


def _check_in_plane(gradients: torch.Tensor, local: torch.Tensor, axes: torch.Tensor) -> None:
    """Gradients of a 2-D basis must have no component along the plane's normal."""
    if axes.shape[0] == 3:
        return
    outside = gradients - local @ axes
    scale = float(gradients.abs().max()) if gradients.numel() else 0.0
    if scale > 0 and float(outside.abs().max()) > 1e-12 * scale:
        raise ValueError(
            "a 2-D coupled basis has no diffusion along its normal, but some gradients have a "
            "component along it: use gradient directions in the basis' plane (its axes), or "
            "a 3-D mesh"
        )
