"""Matrix-formalism signal of a coupled (permeable and/or relaxing) system.

With the eigen-data of :class:`~mf_dmri.coupled.CoupledBasis` the echo signal is

    E = readout^T exp(-t_P G_P) ... exp(-t_1 G_1) initial / reference,
    G_p = diag(rates) + coupling + i gamma g_p . S,

where the rates already contain diffusion, exchange and (bulk and surface) relaxation, so
T2 decay is inside E and is not applied again as exp(-TE/T2).
"""

from __future__ import annotations

import torch

from mf_dmri.coupled import CoupledBasis
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal.propagation import DEFAULT_CHUNK_BYTES, chunk_size, plan_pieces, propagate


def coupled_signal(
    basis: CoupledBasis,
    pieces: GradientPieces,
    *,
    normalize: bool = True,
    time_course: bool = False,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> torch.Tensor:
    """Signal of a coupled basis, complex128 (M,) at the echo or (M, P) after every piece.

    Args:
        basis: the coupled eigen-data (e.g. :func:`mf_dmri.fem.permeable_eigenbasis`).
        pieces: the acquisition's piecewise-constant gradients.
        normalize: divide by ``reference = r^T M m0`` (dimensionless); otherwise the
            signal is ``r^T M m(TE)`` [m^d].
        time_course: return the signal at the end of every piece.
        max_chunk_bytes: memory budget of one batch of matrix exponentials [bytes].
    """
    device = basis.device
    durations = pieces.durations.to(device)
    local = pieces.gradients.to(device) @ basis.axes.T  # (M, P, d)
    plans = plan_pieces(durations, local)
    num_new = sum(p.kind == "new" for p in plans)
    chunk = chunk_size(basis.num_modes, num_new, max_chunk_bytes)
    one = torch.ones((), dtype=basis.rates.dtype, device=device)
    outputs = [
        propagate(
            basis.rates[None],
            basis.moments[None],
            basis.initial[None],
            one,
            durations,
            local[start : start + chunk],
            plans,
            pieces.gyromagnetic_ratio,
            time_course,
            basis.coupling,
            readout=basis.readout[None],
        )
        for start in range(0, local.shape[0], chunk)
    ]
    result = torch.cat(outputs, dim=0)
    return result / basis.reference if normalize else result
