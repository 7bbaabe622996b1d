"""Modes of the permeable/relaxing operator and their exact adjoint w.r.t. the parameters.

Forward: every generalized eigenpair ``A phi = lambda M phi`` (rates [1/s]) up to a cutoff,
cluster-complete, by the project's eigensolver (:func:`mf_dmri.fem.mode_set.lowest_modes`:
inertia-counted spectrum slices, shift-invert block Lanczos) with the exact null vectors of
``A`` deflated (:func:`~mf_dmri.fem.permeable_parameters.exact_null_modes`: a constant per
exchange-connected piece without relaxation; none when something relaxes).

Backward (``A = sum_p theta_p A_p``, ``M`` fixed): the adjoint of docs/eigen_derivatives.md
with ``dM = 0`` and ``dK = sum_p dtheta_p A_p``:

    dLoss/dtheta_p = sum((Phi F - Y) * (A_p Phi)),   F = inter + W_bar + diag(lambda_bar),

``inter_ji = H_ji / (lambda_i - lambda_j)`` between different clusters only (never inside a
cluster), ``H = Phi^T G``, ``G = sum_k 2 J_k Phi S_bar_k + sum_c M 1_c m_bar_c^T`` and
``(A - lambda_i M) y_i = P^T g_i`` (projected shifted solves, one per mode).  Unlike the
Neumann case ``M 1_c`` is not in the kept subspace when something relaxes, so its part of G
enters the solves too.  Parameters are few, so the cost is the L solves, done as one block
preconditioned by the forward's own factorisation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from mf_dmri._checks import DTYPE
from mf_dmri.fem.mode_set import (
    ModeSet,
    cluster_labels,
    lowest_modes,
    projected_shifted_solve,
)


@dataclass(frozen=True, eq=False)
class CoupledSpec:
    """Non-tensor inputs of :class:`CoupledEigenFunction`.

    Args:
        matrices: the unit matrices A_p (N, N).
        mass: M (N, N) [m^d].
        moments: J_k (N, N) [m^(d+1)].
        indicators: (N, C) ones on each compartment's degrees of freedom.
        null_modes: callable theta (numpy) -> (N, z) exact null vectors of A(theta).
        num_modes: keep at least this many modes (extended to close the last cluster).
        max_rate: keep every mode with rate <= this [1/s] (cluster-complete).
        weyl_scale: sum over compartments of V_c / D_c^(d/2) [m^d (s/m^2)^(d/2)], for the
            first guess of the mode count.
        cluster_rtol: relative gap under which rates form one cluster.
        solver_rtol: relative residual of the adjoint solves.
    """

    matrices: tuple[sp.csr_matrix, ...]
    mass: sp.csr_matrix
    moments: tuple[sp.csr_matrix, ...]
    indicators: np.ndarray
    null_modes: Callable[[np.ndarray], np.ndarray]
    num_modes: int | None
    max_rate: float | None
    weyl_scale: float
    cluster_rtol: float
    solver_rtol: float = 1e-12


def coupled_modes(decay: sp.csr_matrix, spec: CoupledSpec, nulls: np.ndarray) -> ModeSet:
    """All modes up to the cutoff (cluster-complete) plus at least 8 buffer modes."""
    return lowest_modes(
        decay,
        spec.mass,
        num_modes=spec.num_modes,
        max_eigenvalue=spec.max_rate,
        cluster_rtol=spec.cluster_rtol,
        dim=len(spec.moments),
        null_vectors=nulls,
        weyl_volume=spec.weyl_scale,
    )


class CoupledEigenFunction(torch.autograd.Function):
    """theta (P,) -> (rates (L,), coupling (L, L), moments (d, L, L), integrals (C, L))."""

    @staticmethod
    def forward(ctx, theta, spec: CoupledSpec):  # noqa: D102
        values = theta.detach().cpu().numpy()
        decay = sum(float(t) * a for t, a in zip(values, spec.matrices, strict=True))
        decay = ((decay + decay.T) * 0.5).tocsr()
        modes = coupled_modes(decay, spec, spec.null_modes(values))
        phi = modes.vectors[:, : modes.num_kept]
        lam = modes.eigenvalues[: modes.num_kept]
        reduced = np.stack([phi.T @ (q @ phi) for q in spec.moments])
        reduced = 0.5 * (reduced + reduced.transpose(0, 2, 1))
        integrals = (phi.T @ (spec.mass @ spec.indicators)).T
        ctx.state = (spec, decay, modes)
        ctx.device = theta.device

        def out(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, dtype=DTYPE, device=theta.device)

        count = lam.size
        return out(lam), out(np.zeros((count, count))), out(reduced), out(integrals)

    @staticmethod
    def backward(ctx, grad_lam, grad_coupling, grad_moments, grad_integrals):  # noqa: D102
        spec, decay, modes = ctx.state
        count, dim = modes.num_kept, len(spec.moments)
        grads = [
            np.zeros(shape) if g is None else g.detach().cpu().numpy().astype(np.float64)
            for g, shape in (
                (grad_lam, (count,)),
                (grad_coupling, (count, count)),
                (grad_moments, (dim, count, count)),
                (grad_integrals, (spec.indicators.shape[1], count)),
            )
        ]
        gradient = parameter_adjoint(decay, spec, modes, *grads)
        return torch.as_tensor(gradient, dtype=DTYPE, device=ctx.device), None


def parameter_adjoint(decay, spec: CoupledSpec, modes: ModeSet, lam_bar, w_bar, s_bar, m_bar):
    """dLoss/dtheta (P,) from the output adjoints (see the module docstring)."""
    count = modes.num_kept
    phi = modes.vectors[:, :count]
    lam = modes.eigenvalues[:count]
    labels = cluster_labels(lam, spec.cluster_rtol, max(abs(lam[-1]), 1e-300))
    same = labels[:, None] == labels[None, :]
    off_diag = same & ~np.eye(count, dtype=bool)
    s_sym = 0.5 * (s_bar + s_bar.transpose(0, 2, 1))
    w_sym = np.where(off_diag, 0.5 * (w_bar + w_bar.T), 0.0)
    g_full = sum(2.0 * (q @ phi) @ s for q, s in zip(spec.moments, s_sym, strict=True))
    g_full = g_full + (spec.mass @ spec.indicators) @ m_bar
    h = phi.T @ g_full
    gap = lam[None, :] - lam[:, None]  # gap[j, i] = lambda_i - lambda_j
    inter = np.divide(h, gap, out=np.zeros_like(h), where=~same)
    f_k = inter + w_sym + np.diag(lam_bar)
    y = projected_shifted_solve(decay, spec.mass, modes, g_full, rtol=spec.solver_rtol)
    left = phi @ f_k - y
    return np.array([float(np.sum(left * (a @ phi))) for a in spec.matrices])
