"""Propagation by exponential actions: batched Krylov (Arnoldi) steps with error control.

The signal needs only the action of each piece's exponential on the current state, never the
exponential itself.  For a batch of W measurements the states form a (W, L) block; each
Arnoldi step applies the generators

    A_w x = D_w Lambda x + i gamma (g_w . Q) x  (+ D_w W x with a stiffness coupling W),

as d real GEMMs of the shared moment matrices Q_k with the block (BLAS-3, O(W d L^2) per
step instead of the O(W L^3) of a dense exponential).  One step of length t maps a state v
to  beta V_{m+1} exp(-t Hbar)[:, 0]  (Saad 1992, SIAM J. Numer. Anal. 29, 209; the corrected
scheme of Sidje 1998, ACM TOMS 24, 130, "Expokit"): V_{m+1} the orthonormal Krylov basis of
(A_w, v), Hbar the (m+1) x (m+1) Hessenberg matrix with a zero last column.  The last
coefficient  beta |exp(-t Hbar)[m, 0]|  is the a-posteriori estimate of the error of the
uncorrected m-term approximation (Saad's residual estimate), an upper estimate of the error
of the corrected one used here.  Step lengths are chosen from it so that the estimates of
all steps of all pieces add up to at most ``tolerance`` times |r^T c0| / ||r|| (the bound of
:class:`~mf_dmri.signal.propagators.Propagator`: every generator has a positive
semi-definite Hermitian part, so the later pieces do not amplify an error).  The Krylov
basis does not depend on t, so a rejected step costs one small exponential only.

The loop over the pieces, the parity frame, the exact decay of pieces without gradient and
the mirrored half of PGSE-like waveforms are shared with the shift-and-invert propagator
(:mod:`mf_dmri.signal.exponential_actions`).  Every operation is a torch operation, so
autograd differentiates the computed values with respect to every input (eigen-data,
diffusivity, durations, gradients, coupling); the step lengths are chosen on detached
values and enter as fixed fractions of each piece's duration.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mf_dmri.signal.exponential_actions import (
    Generators,
    check_tolerance,
    propagate_pieces,
    safe_norm,
)
from mf_dmri.signal.propagators import PropagationBatch

#: Safety factor of the step-length update (Expokit's gamma) and its shrink limit.
_SAFETY, _SHRINK = 0.9, 0.1

#: A step shorter than this fraction of its piece means the error control failed.
_MIN_FRACTION = 1e-9


@dataclass(frozen=True)
class KrylovExponential:
    """Exponential actions by batched Arnoldi steps with a-posteriori error control.

    Args:
        tolerance: bound on the absolute error of each normalised value [-], enforced on
            the a-posteriori estimates of every step (see the module docstring).
        krylov_dimension: most Arnoldi vectors per step m [-]; a step stops growing its
            Krylov space as soon as the rest of the piece passes the error estimate (at most
            the number of modes L is used; with L <= m one step is exact to round-off).
    """

    tolerance: float = 1e-10
    krylov_dimension: int = 60

    def __post_init__(self) -> None:
        check_tolerance(self.tolerance)
        if not isinstance(self.krylov_dimension, int) or self.krylov_dimension < 2:
            raise ValueError(
                f"krylov_dimension must be an integer >= 2, got {self.krylov_dimension!r}"
            )

    def rows_per_batch(self, num_modes: int, num_new_pieces: int, max_bytes: int) -> int:
        """Rows whose Krylov bases (m + 1 complex vectors of L, kept with their stacked
        copies and the block products for autograd, about 4 m) fit in ``max_bytes`` [bytes]
        for one step; at least 1.  (The steps of a differentiated batch are all kept.)"""
        del num_new_pieces
        m = min(self.krylov_dimension, num_modes)
        per_row = 16 * (4 * (m + 1) * num_modes + 2 * (m + 1) ** 2)
        return max(1, max_bytes // per_row)

    def propagate(self, batch: PropagationBatch, *, time_course: bool = False) -> torch.Tensor:
        """``r^T c(t)`` (W,) at the echo, or (W, P) after every piece (see
        :class:`~mf_dmri.signal.propagators.PropagationBatch`)."""
        generators = Generators.of(batch)
        m = min(self.krylov_dimension, generators.num_modes)

        def action(state, index, budget):
            gradient = batch.gradients[:, index]

            def apply(vector):
                return generators.generator_action(vector, gradient)

            return _exponential_action(apply, state, batch.durations[index], budget, m)

        return propagate_pieces(batch, generators, self.tolerance, action, time_course=time_course)


#: Arnoldi vectors stacked per block (the basis is kept as blocks, so that each step copies
#: at most one partial block instead of the whole basis).
_BLOCK = 8


def _arnoldi_steps(apply, start: torch.Tensor, m: int):
    """Arnoldi on a block: yields, after each step j = 1..m, the Krylov basis (a list of
    blocks (W, k, L) holding j + 1 orthonormal vectors per row), the norms beta (W,) of
    ``start`` and the Hessenberg columns (j tensors (W, i + 1)).  Classical Gram-Schmidt
    applied twice (Giraud et al. 2005, Numer. Math. 101, 87)."""
    beta, divisor = safe_norm(start)
    full: list[torch.Tensor] = []  # complete blocks (W, _BLOCK, L)
    partial = [start / divisor[:, None]]
    columns = []
    for _ in range(m):
        w = apply(partial[-1])
        blocks = full + [torch.stack(partial, dim=1)]
        coefficients = None
        for _ in range(2):
            # V^H w as conj(w^H V): the conjugate of the small vector, not of the basis
            row = w.conj().resolve_conj()[:, None, :]
            h = torch.cat([torch.bmm(row, b.transpose(1, 2)) for b in blocks], dim=2).conj()
            offsets = [0]
            for b in blocks:
                offsets.append(offsets[-1] + b.shape[1])
            for b, lo, hi in zip(blocks, offsets[:-1], offsets[1:]):
                w = w - torch.bmm(h[:, :, lo:hi], b)[:, 0]
            coefficients = h if coefficients is None else coefficients + h
        norm, divisor = safe_norm(w)
        columns.append(torch.cat([coefficients[:, 0], norm[:, None].to(w.dtype)], dim=1))
        if len(partial) == _BLOCK:
            full.append(blocks[-1])
            partial = []
        partial.append(w / divisor[:, None])
        yield full + [torch.stack(partial, dim=1)], beta, columns


def _hessenberg(columns: list[torch.Tensor]) -> torch.Tensor:
    """The (W, j + 1, j + 1) Hessenberg matrix, zero last column, of j Arnoldi columns."""
    size = len(columns) + 1
    padded = [torch.nn.functional.pad(c, (0, size - c.shape[1])) for c in columns]
    return torch.nn.functional.pad(torch.stack(padded, dim=-1), (0, 1))


#: Krylov dimensions at which the error estimate of the whole remaining piece is tried
#: (and always at the largest dimension).
_CHECKS = frozenset((4, 8, 12, 16, 20, 25, 30, 36, 42, 50, 60, 72, 86, 100))


#: Rows on which a trial Krylov dimension is screened before all rows are checked.
_PROBES = 8


def _probe_passes(hessenberg, beta, budget, duration) -> bool:
    """Whether the error estimate over ``duration`` [s] passes on the few rows whose Krylov
    process is the least converged (largest beta times the product of the subdiagonal of
    the Hessenberg matrix): a cheap screen before the check of every row."""
    if hessenberg.shape[0] <= _PROBES:
        return True
    subdiagonal = torch.diagonal(hessenberg, offset=-1, dim1=1, dim2=2).abs()
    score = torch.log(beta + 1e-300) + torch.log(subdiagonal + 1e-300).sum(-1)
    probe = torch.topk(score, _PROBES).indices
    coefficients = torch.linalg.matrix_exp(-duration * hessenberg[probe])[:, :, 0]
    estimate = beta[probe] * coefficients[:, -1].abs()
    return bool((estimate <= budget[probe]).all())


def _exponential_action(apply, state, tau, budget, m):
    """exp(-tau A) state for a block (W, L), by Krylov steps whose error estimates add up
    to at most ``budget`` (W,) over the piece (see the module docstring).  Each step grows
    its Krylov space until the rest of the piece passes the estimate, up to ``m`` vectors;
    then the step is shortened instead."""
    remaining, fixed_tau = 1.0, float(tau.detach())
    while remaining > 1e-12:
        for size, (basis, beta, columns) in enumerate(_arnoldi_steps(apply, state, m), 1):
            if size not in _CHECKS and size < m:
                continue
            hessenberg = _hessenberg(columns)
            fraction, coefficients, ratio = remaining, None, None
            fixed_h, fixed_beta = hessenberg.detach(), beta.detach()
            if size < m and not _probe_passes(fixed_h, fixed_beta, budget, remaining * fixed_tau):
                continue
            while True:
                coefficients = torch.linalg.matrix_exp(-fraction * fixed_tau * fixed_h)[:, :, 0]
                estimate = fixed_beta * coefficients[:, -1].abs()
                ratio = float((estimate / (budget * fraction)).max())
                if ratio <= 1.0 or size < m:
                    break
                fraction *= max(_SHRINK, _SAFETY * ratio ** (-1.0 / m))
                if fraction < _MIN_FRACTION:
                    raise RuntimeError(
                        "the Krylov step control needs steps below 1e-9 of a piece: the "
                        "generator is too stiff for its tolerance; use DenseExponential()"
                    )
            if ratio <= 1.0:
                chosen = basis
                break
        if hessenberg.requires_grad or beta.requires_grad or tau.requires_grad:
            coefficients = torch.linalg.matrix_exp(-(fraction * tau) * hessenberg)[:, :, 0]
        weights = beta[:, None].to(coefficients.dtype) * coefficients  # (W, j+1)
        state = torch.bmm(weights[:, None, :], torch.cat(chosen, dim=1))[:, 0]
        remaining -= fraction
    return state
