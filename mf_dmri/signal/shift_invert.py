"""Propagation by shift-and-invert Krylov steps: exponential actions of stiff generators.

Over a piece of duration t the state v is mapped to exp(-t A_w) v for every row w of a batch
(A_w = D_w Lambda + i gamma g_w . Q; the loop over the pieces is shared with the polynomial
Krylov propagator, :mod:`mf_dmri.signal.exponential_actions`).  The diffusion part makes
t A_w stiff (D lambda_max t of 100-10,000 for a few hundred modes), so the polynomial
Krylov space of A_w needs about as many vectors as there are modes.  The shift-and-invert
(restricted-denominator) Krylov method works instead in the Krylov space of

    Z_w^-1,   Z_w = I + s t A_w   (s = ``shift``, a fraction of the piece),

(Moret & Novati 2004, BIT 44, 595; van den Eshof & Hochbruck 2006, SIAM J. Sci. Comput. 27,
1438): with the Arnoldi relation Z^-1 V_m = V_m H_m + h e_m^T,

    exp(-t A) v ~ beta V_m exp(-(H_m^-1 - I) / s) e_1,   beta = ||v||,

whose convergence does not depend on the stiffness (10-16 vectors for 1e-10 on the Neumann
generators used here, whatever D lambda_max t).  Each row costs one dense LU of Z_w
(O(L^3)) and one pair of triangular solves per Krylov vector (O(L^2)).  The Hermitian part of
A_w is positive semi-definite, so Z_w^-1 and every H_m have a positive definite Hermitian
part (H_m is invertible).

Error control (a-posteriori estimate): the Krylov space grows in the sizes of ``_CHECKS``;
the difference between the approximations at two successive sizes estimates the error of the
smaller one, and the larger one is accepted when that estimate is within the budget of the
piece (the same budget as :class:`~mf_dmri.signal.krylov.KrylovExponential`); at m = L the
space is the whole space and the result exact to round-off.  An exactly invariant Krylov
space (happy breakdown, e.g. a row with zero gradient) is exact from then on; when the
gradients are differentiated, a batch with a zero-gradient row is handed to
:class:`~mf_dmri.signal.dense.DenseExponential` instead (second derivatives along that
gradient would leave the invariant space).

Derivatives: every operation is a torch operation except the solves with the LU factors,
which are a ``torch.autograd.Function`` whose backward is the adjoint solve with the same
factors (Z^-H, O(L^2)) and the rank-one update of the gradient of Z, written in terms of the
same function so that derivatives of every order exist.  The backward of a pass thus costs
O(m L^2) per row and piece besides the contraction of the gradients of Z with the moment
matrices: no exponential is differentiated in dense form.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mf_dmri.signal.dense import DenseExponential
from mf_dmri.signal.exponential_actions import (
    Generators,
    check_tolerance,
    propagate_pieces,
    safe_norm,
)
from mf_dmri.signal.propagators import PropagationBatch

#: Krylov dimensions at which the approximation is formed and compared with the previous one.
#: Beyond 128 they grow by about a quarter, so a hard case costs at most about 1.25 times
#: the dimension it needs (a 330 um slab at b = 20,000 s/mm^2, D = 1 um^2/ms, PGSE 20/50
#: ms, did not converge within 128 vectors in its error check;
#: tests/test_signal_shift_invert.py).
_CHECKS = (8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 128) + tuple(
    16 * round(128 * 1.25**k / 16) for k in range(1, 25)
)


@dataclass(frozen=True)
class ShiftInvertExponential:
    """Exponential actions by shift-and-invert Krylov steps (see the module docstring).

    Args:
        tolerance: bound on the a-posteriori error estimate of each normalised value [-]
            (the difference of two successive Krylov approximations, summed over pieces).
        shift: s, the shift of Z = I + s t A as a fraction of each piece's duration [-];
            measured on the ReMiDi-like cylinder of benchmarks/bench_grad.py (87 modes,
            D lambda_max t = 311), 1e-10 is reached with 14, 12, 12, 10 vectors at
            s = 0.05, 0.1, 0.3, 0.5.
        max_dimension: most Krylov vectors per piece [-], or None (default) for up to
            the number of modes L: at L the space is the whole space and the action exact
            to round-off, so the default never fails; a bound raises RuntimeError when the
            tolerance is not reached within it.
    """

    tolerance: float = 1e-10
    shift: float = 0.3
    max_dimension: int | None = None

    def __post_init__(self) -> None:
        check_tolerance(self.tolerance)
        if not (0.0 < self.shift <= 10.0):
            raise ValueError(
                f"shift must lie in (0, 10] (a fraction of each piece's duration), "
                f"got {self.shift!r}"
            )
        if self.max_dimension is None:
            return
        if not isinstance(self.max_dimension, int) or self.max_dimension < _CHECKS[0]:
            raise ValueError(
                f"max_dimension must be an integer >= {_CHECKS[0]}, got {self.max_dimension!r}"
            )

    def _largest(self, num_modes: int) -> int:
        """The most Krylov vectors for ``num_modes`` modes."""
        return num_modes if self.max_dimension is None else min(self.max_dimension, num_modes)

    def rows_per_batch(self, num_modes: int, num_new_pieces: int, max_bytes: int) -> int:
        """Rows whose generator, LU factors and gradient buffers (about 5 complex L x L
        matrices) and Krylov bases fit in ``max_bytes`` [bytes]; at least 1."""
        del num_new_pieces
        m = self._largest(num_modes)
        per_row = 16 * (5 * num_modes * num_modes + 4 * (m + 1) * num_modes)
        return max(1, max_bytes // per_row)

    def propagate(self, batch: PropagationBatch, *, time_course: bool = False) -> torch.Tensor:
        """``r^T c(t)`` (W,) at the echo, or (W, P) after every piece (see
        :class:`~mf_dmri.signal.propagators.PropagationBatch`)."""
        if _invariant_under_differentiation(batch):
            return DenseExponential().propagate(batch, time_course=time_course)
        generators = Generators.of(batch)

        def action(state, index, budget):
            step = self.shift * batch.durations[index]
            shifted = _Shifted.of(generators, batch.gradients[:, index], step)
            return self._action(shifted, state, budget)

        return propagate_pieces(batch, generators, self.tolerance, action, time_course=time_course)

    def _action(self, shifted: _Shifted, state: torch.Tensor, budget: torch.Tensor):
        """exp(-t A) state (W, L), with ``shifted`` Z = I + s t A."""
        size = shifted.lu.shape[-1]
        largest = self._largest(size)
        checks = [m for m in _CHECKS if m < largest] + [largest]
        state = state.to(shifted.lu.dtype) if shifted.lu.is_complex() else state
        krylov = _ShiftInvertArnoldi(shifted, state)
        previous = None
        for m in checks:
            krylov.extend(m)
            coefficients = krylov.coefficients(m, self.shift, detached=True)
            if m == largest and m == size:
                break
            if previous is not None:
                padded = torch.nn.functional.pad(previous, (0, m - previous.shape[1]))
                estimate = torch.linalg.vector_norm(coefficients - padded, dim=-1)
                if bool((estimate <= budget).all()):
                    break
            previous = coefficients
        else:
            raise RuntimeError(
                f"the shift-and-invert Krylov approximation did not reach its tolerance in "
                f"{largest} vectors: raise max_dimension or use DenseExponential()"
            )
        weights = krylov.coefficients(m, self.shift, detached=False)
        return torch.bmm(weights[:, None, :], krylov.basis(m))[:, 0]


def _invariant_under_differentiation(batch: PropagationBatch) -> bool:
    """Whether the gradients require grad and some propagated piece of some row has zero
    gradient: its Krylov space is then exactly invariant in value, and the derivatives of
    order >= 2 along that gradient (which leave it) would be lost."""
    if not batch.gradients.requires_grad:
        return False
    pieces = [i for i, plan in enumerate(batch.plans) if plan.kind == "new"]
    return not bool(batch.gradients.detach()[:, pieces].any(-1).all())


@dataclass(frozen=True)
class _Shifted:
    """Z = I + step (diag(rates) + scale g.Q + coupling) of a block of rows, by its terms:
    ``rates`` (W or 1, L) [1/s], ``gradient`` (W, d) [T/m], ``moments`` (W or 1, d, L, L),
    ``scale`` (i gamma, or gamma under parity), ``coupling`` D W (W or 1, L, L) or None,
    ``step`` s t [s]; with the LU factors of Z (values only)."""

    rates: torch.Tensor
    gradient: torch.Tensor
    moments: torch.Tensor
    scale: complex | float
    coupling: torch.Tensor | None
    step: torch.Tensor
    lu: torch.Tensor
    pivots: torch.Tensor

    @staticmethod
    def of(generators: Generators, gradient: torch.Tensor, step: torch.Tensor) -> _Shifted:
        rates, moments, scale = generators.rates, generators.moments, generators.scale
        coupling = None
        if generators.coupling is not None:
            rate = torch.as_tensor(generators.diffusivity, dtype=generators.coupling.dtype)
            rate = rate.reshape(rate.shape[:1] + (1, 1)) if rate.ndim else rate
            coupling = rate * generators.coupling
            coupling = coupling if coupling.ndim == 3 else coupling[None]
        gradient = gradient.to(moments.dtype)
        with torch.no_grad():
            matrix = _dense(rates, gradient, moments, scale, coupling, step)
            lu, pivots = _lu_factor_each(matrix)
        return _Shifted(rates, gradient, moments, scale, coupling, step, lu, pivots)

    def solve(self, rhs: torch.Tensor, adjoint: bool = False) -> torch.Tensor:
        """Z^-1 rhs (or Z^-H rhs), differentiable with respect to every term and ``rhs``."""
        return _ShiftedSolve.apply(
            rhs, self.rates, self.gradient, self.moments, self.coupling, self.step, self, adjoint
        )


def _lu_factor_each(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LU factors of a (W, L, L) batch, one matrix at a time: torch 2.13's batched CPU
    ``lu_factor`` (MKL getrf above L = 128) returns invalid pivots or wrong factors once
    ``torch.set_num_threads`` has been called in the process (tests/test_signal_shift_invert.py
    checks this path after a thread-count change)."""
    factors = [torch.linalg.lu_factor(one) for one in matrix]
    return torch.stack([f[0] for f in factors]), torch.stack([f[1] for f in factors])


def _dense(rates, gradient, moments, scale, coupling, step) -> torch.Tensor:
    """The (W, L, L) matrix Z = I + step (diag(rates) + scale g.Q (+ coupling)), values
    only (built in place, no graph)."""
    if moments.shape[0] == 1:  # shared moments: one GEMM
        flat = moments[0].reshape(moments.shape[1], -1)
        phase = (gradient @ flat).reshape(-1, *moments.shape[2:])
    else:
        phase = torch.einsum("wk,wkij->wij", gradient, moments)
    imaginary = complex(scale).imag * step
    real = phase * (complex(scale).real * step)
    if coupling is not None:
        real = real + step * coupling
    real.diagonal(dim1=-2, dim2=-1).add_(1.0 + step * rates)
    return torch.complex(real, phase.mul_(imaginary)) if isinstance(scale, complex) else real


def _moment_action(moments: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Q_k x for every row and direction k, (W, d, L), from (W, L)."""
    if moments.shape[0] == 1:
        dim, size = moments.shape[1], moments.shape[-1]
        flat = moments[0].reshape(dim * size, size).to(vectors.dtype)
        return (vectors @ flat.T).reshape(vectors.shape[0], dim, size)
    return torch.einsum("wkij,wj->wki", moments.to(vectors.dtype), vectors)


def _real_product(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Re(left @ right) by real GEMMs."""
    if not left.is_complex():
        return left @ right
    return left.real @ right.real - left.imag @ right.imag


def _reduce_to(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a per-row gradient over the rows of an input shared by all rows."""
    return grad.sum(0, keepdim=True) if shape[0] == 1 and grad.shape[0] != 1 else grad


class _ShiftedSolve(torch.autograd.Function):
    """x = Z^-1 b (or Z^-H b with ``adjoint``) for rows (W, L), from the LU factors of Z.

    The gradient of Z is the rank-one -p q^H per row ((p, q) = (b_bar, x), or (x, b_bar)
    for the adjoint solve), contracted here with the terms of Z without forming it: O(d L^2)
    per row, the moments' share as one GEMM over the rows.  The backward uses only torch
    operations and this function, so derivatives of every order exist."""

    @staticmethod
    def forward(ctx, rhs, rates, gradient, moments, coupling, step, shifted, adjoint):
        solution = torch.linalg.lu_solve(
            shifted.lu, shifted.pivots, rhs[..., None], adjoint=adjoint
        )[..., 0]
        ctx.save_for_backward(rhs, rates, gradient, moments, coupling, step, solution)
        ctx.shifted, ctx.adjoint = shifted, adjoint
        return solution

    @staticmethod
    def backward(ctx, grad):
        rhs, rates, gradient, moments, coupling, step, solution = ctx.saved_tensors
        shifted, adjoint = ctx.shifted, ctx.adjoint
        rhs_grad = _ShiftedSolve.apply(
            grad, rates, gradient, moments, coupling, step, shifted, not adjoint
        )
        p, q = (solution, rhs_grad) if adjoint else (rhs_grad, solution)
        scale = shifted.scale
        needs = ctx.needs_input_grad
        grads = [rhs_grad, None, None, None, None, None, None, None]
        if needs[1]:
            grads[1] = _reduce_to(-step * (p * q.conj()).real, rates.shape)
        weighted = p * scale.conjugate()
        if needs[2]:
            projected = _moment_action(moments, q.conj())  # (W, d, L)
            grads[2] = -step * torch.einsum("wi,wki->wk", weighted, projected).real
        if needs[3]:
            if moments.shape[0] == 1:  # sum_w g_wk Re(p'_w q_w^H): one GEMM over the rows
                count, dim, size = gradient.shape[0], gradient.shape[1], p.shape[-1]
                left = (gradient[:, :, None] * weighted[:, None, :]).reshape(count, dim * size)
                outer = _real_product(left.T, q.conj()).reshape(1, dim, size, size)
                grads[3] = -step * outer
            else:
                outer = torch.einsum("wk,wi,wj->wkij", gradient.to(p.dtype), weighted, q.conj())
                grads[3] = -step * outer.real
        if needs[4]:
            if coupling.shape[0] == 1:  # sum_w Re(p_w q_w^H): one GEMM over the rows
                grads[4] = -step * _real_product(p.T, q.conj())[None]
            else:
                grads[4] = -step * (p[:, :, None] * q.conj()[:, None, :]).real
        if needs[5]:  # tr(A^H grad Z) with A x = (b - x) / step (or A^H x for adjoint)
            pair = (rhs_grad.conj() * (rhs - solution)).sum()
            grads[5] = -(pair.real if pair.is_complex() else pair) / step
        return tuple(grads)


class _ShiftInvertArnoldi:
    """Arnoldi process on Z^-1 for a block of rows, grown on demand (classical Gram-Schmidt
    applied twice, Giraud et al. 2005, Numer. Math. 101, 87)."""

    def __init__(self, shifted: _Shifted, start: torch.Tensor):
        self.shifted = shifted
        self.beta, divisor = safe_norm(start)
        self.vectors = [start / divisor[:, None]]
        self.columns: list[torch.Tensor] = []
        self.dead = self.beta.detach() == 0  # rows whose Krylov space is exactly invariant

    def extend(self, size: int) -> None:
        while len(self.columns) < size:
            w = self.shifted.solve(self.vectors[-1])
            basis = torch.stack(self.vectors, dim=1)  # (W, j, L)
            coefficients = None
            for _ in range(2):
                h = torch.bmm(basis.conj(), w[:, :, None])[:, :, 0]  # (W, j)
                w = w - torch.bmm(h[:, None, :], basis)[:, 0]
                coefficients = h if coefficients is None else coefficients + h
            # a row whose previous vector is exactly zero has an invariant space: its
            # identity diagonal entry keeps H invertible and decoupled from e_1
            filler = self.dead.to(coefficients.dtype)
            coefficients = coefficients + torch.nn.functional.pad(
                filler[:, None], (coefficients.shape[1] - 1, 0)
            )
            norm, divisor = safe_norm(w)
            self.columns.append(torch.cat([coefficients, norm[:, None].to(w.dtype)], dim=1))
            self.dead = norm.detach() == 0
            self.vectors.append(w / divisor[:, None])

    def basis(self, size: int) -> torch.Tensor:
        return torch.stack(self.vectors[:size], dim=1)

    def coefficients(self, size: int, shift: float, *, detached: bool) -> torch.Tensor:
        """beta exp(-(H_m^-1 - I) / s) e_1, (W, m)."""
        padded = [torch.nn.functional.pad(c, (0, size + 1 - c.shape[1])) for c in self.columns]
        hessenberg = torch.stack(padded[:size], dim=-1)[:, :size, :]
        beta = self.beta
        if detached:
            hessenberg, beta = hessenberg.detach(), beta.detach()
        eye = torch.eye(size, dtype=hessenberg.dtype, device=hessenberg.device)
        # batched inverse above size 128 hits the torch 2.13 CPU LU fault (_lu_factor_each)
        inverse = (
            torch.linalg.inv(hessenberg)
            if size <= 128
            else torch.stack([torch.linalg.inv(one) for one in hessenberg])
        )
        exponent = (inverse - eye) / (-shift)
        return beta[:, None].to(hessenberg.dtype) * torch.linalg.matrix_exp(exponent)[:, :, 0]
