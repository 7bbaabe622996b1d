"""Dense propagation: one batched ``torch.linalg.matrix_exp`` per distinct piece.

All measurements of a batch share one batched complex (or, under a parity plan, real)
L x L matrix exponential per distinct gradient piece: pieces with zero gradient are
diagonal, a piece equal to an earlier one reuses its exponential, and a piece equal to the
negative of an earlier one (the refocused lobe) reuses its complex conjugate (Lambda and Q
are real).  Cost O(W L^3) per distinct piece; exact to round-off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mf_dmri._checks import CDTYPE
from mf_dmri.signal.parity import real_moments, similarity
from mf_dmri.signal.propagators import PropagationBatch


@dataclass(frozen=True)
class DenseExponential:
    """Dense batched matrix exponentials (scaling and squaring, Pade; Higham 2005).

    Args:
        tolerance: bound on the absolute error of each normalised value [-]: the round-off
            of double-precision exponentials of the bounded generators used here.
    """

    tolerance: float = 1e-11

    def rows_per_batch(self, num_modes: int, num_new_pieces: int, max_bytes: int) -> int:
        """Rows whose ``num_new_pieces`` complex (L x L) exponentials, with two work copies,
        fit in ``max_bytes`` [bytes]; at least 1."""
        per_row = 16 * num_modes * num_modes * max(num_new_pieces, 1) * 3
        return max(1, max_bytes // per_row)

    def propagate(self, batch: PropagationBatch, *, time_course: bool = False) -> torch.Tensor:
        """``r^T c(t)`` (W,) at the echo, or (W, P) after every piece (see
        :class:`~mf_dmri.signal.propagators.PropagationBatch`).

        ``coupling`` (L, L), zero in value, is added to diag(eigenvalues) in every
        generator; on zero-gradient pieces its first-order effect
        -tau D exp(-tau D lambda) W (exact for a W supported on exactly degenerate clusters)
        is added so that its gradient flows.  ``parity`` propagates the similar real system
        (:mod:`mf_dmri.signal.parity`; only without coupling)."""
        coupling, parity = batch.coupling, batch.parity
        if parity is not None and coupling is not None:
            raise ValueError("parity needs coupling=None: the coupling may mix parities")
        diffusivity = batch.diffusivity
        relaxation = diffusivity * batch.eigenvalues  # (W, L) [1/s]
        start = batch.initial.to(CDTYPE)
        readout = batch.readout.to(CDTYPE)
        moments = batch.moments
        local = batch.gradients
        if parity is not None:
            diagonal = similarity(parity)  # c = S x: x starts at S^-1 c(0), read out by S^T
            start, readout = start / diagonal, readout * diagonal
            moments = real_moments(moments, parity)
            flip = parity[..., :, None] * parity[..., None, :]
        state = start.expand(local.shape[0], -1)  # (W, L)
        exponentials: dict[int, torch.Tensor] = {}
        history = []
        for index, plan in enumerate(batch.plans):
            tau = batch.durations[index]
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
                        "mk,mkij->mij",
                        local[:, index],
                        moments.expand(local.shape[0], -1, -1, -1),
                    )
                    generator = _generator(
                        relaxation, phase, batch.gamma, diffusivity, coupling, parity
                    )
                    exponentials[index] = torch.linalg.matrix_exp(-tau * generator)
                propagator = exponentials[plan.source]
                if plan.kind == "conj":
                    propagator = propagator.conj() if parity is None else propagator * flip
                state = torch.einsum("mij,mj->mi", propagator.to(CDTYPE), state)
            if time_course:
                history.append((state * readout).sum(-1))
        if time_course:
            return torch.stack(history, dim=1)
        return (state * readout).sum(-1)


def _generator(relaxation, phase, gamma, diffusivity, coupling, parity) -> torch.Tensor:
    """D Lambda + i gamma g.Q (+ D W), or the real D Lambda + gamma g.J under ``parity``."""
    if parity is not None:
        return torch.diag_embed(relaxation).to(phase.dtype) + gamma * phase
    generator = torch.diag_embed(relaxation).to(CDTYPE) + 1j * gamma * phase
    if coupling is not None:
        rate = torch.as_tensor(diffusivity, dtype=coupling.dtype)
        rate = rate.reshape(rate.shape[:1] + (1, 1)) if rate.ndim else rate
        generator = generator + (rate * coupling).to(CDTYPE)
    return generator
