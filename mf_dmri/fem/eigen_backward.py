"""Sparse generalized eigen-solve with an exact adjoint (a ``torch.autograd.Function``).

Forward: the lowest Neumann modes ``K phi_i = lambda_i M phi_i`` (``Phi^T M Phi = I``) of
the assembled P1 matrices, cluster-complete (see :mod:`mf_dmri.fem.mode_set`), and the
reduced eigen-data

* ``eigenvalues`` lambda (L,),
* ``coupling`` W (L, L): identically zero in value; its variation is the within-cluster
  off-diagonal part of the reduced stiffness ``Phi^T K Phi`` in the gauge used here, so
  ``diag(lambda) + W`` is the reduced stiffness whose first derivative is exact for every
  loss invariant under rotations inside degenerate clusters (docs/eigen_derivatives.md),
* ``moments`` ``Phi^T Q_k Phi`` (d, L, L),
* ``mode_integrals`` ``Phi^T M 1`` (L,).

Backward: the adjoint with respect to the element values of K, M and Q_k.  Pairs in
different clusters use the classical ``1 / (lambda_i - lambda_j)`` rotation; inside a
cluster the basis moves only by its symmetric (normalisation) part, never dividing by a
small gap; the component outside the kept subspace comes from one projected shifted solve
per mode, all modes in one block CG preconditioned by the forward's own factorisation.
The derivation is in docs/eigen_derivatives.md.

The inputs are element matrices (E, n, n) on ``elements`` (E, n), as produced by
:func:`mf_dmri.fem.torch_assembly.assemble_p1`; they are symmetrised, and the stiffness
must annihilate the constant on each connected piece (true for every P1 stiffness).
"""

from __future__ import annotations

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

#: elements per chunk when the adjoint is scattered back onto element matrices
_CHUNK_ELEMENTS = 20000


@dataclass(frozen=True)
class EigenSpec:
    """Non-tensor arguments of the eigen-solve.

    Args:
        elements: (E, n) int64 node indices of each simplex.
        num_nodes: number of mesh nodes N.
        num_modes: keep at least this many modes (extended to close the last cluster).
        max_eigenvalue: keep every mode with eigenvalue <= this [1/m^2] (cluster-complete).
        cluster_rtol: relative gap (to the largest kept eigenvalue) below which two
            eigenvalues form one degenerate cluster.
        solver_rtol: relative residual of the adjoint CG solves.
    """

    elements: np.ndarray
    num_nodes: int
    num_modes: int | None
    max_eigenvalue: float | None
    cluster_rtol: float
    solver_rtol: float = 1e-12

    def __post_init__(self) -> None:
        if (self.num_modes is None) == (self.max_eigenvalue is None):
            raise ValueError("give exactly one of num_modes and max_eigenvalue [1/m^2]")
        if self.num_modes is not None and self.num_modes < 1:
            raise ValueError(f"num_modes must be >= 1, got {self.num_modes}")
        if self.max_eigenvalue is not None and not self.max_eigenvalue >= 0:
            raise ValueError(f"max_eigenvalue must be >= 0 [1/m^2], got {self.max_eigenvalue}")
        if not 0 < self.cluster_rtol < 1e-2:
            raise ValueError("cluster_rtol must be in (0, 1e-2); the default is 1e-6")

    def assemble(self, values: torch.Tensor) -> sp.csr_matrix:
        """Symmetrised assembled (N, N) CSR matrix of element values (E, n, n)."""
        el = self.elements
        n = el.shape[1]
        rows = np.repeat(el, n, axis=1).reshape(-1)
        cols = np.tile(el, (1, n)).reshape(-1)
        data = values.detach().cpu().numpy().reshape(-1)
        shape = (self.num_nodes, self.num_nodes)
        matrix = sp.csr_matrix((data, (rows, cols)), shape=shape)
        return ((matrix + matrix.T) * 0.5).tocsr()


class EigenFunction(torch.autograd.Function):
    """(stiffness (E,n,n), mass (E,n,n), moments (d,E,n,n), spec) ->
    (eigenvalues (L,), coupling (L,L), moments (d,L,L), mode_integrals (L,))."""

    @staticmethod
    def forward(ctx, stiffness, mass, moments, spec: EigenSpec):  # noqa: D102
        k_mat, m_mat = spec.assemble(stiffness), spec.assemble(mass)
        q_mats = [spec.assemble(q) for q in moments]
        modes = lowest_modes(
            k_mat,
            m_mat,
            num_modes=spec.num_modes,
            max_eigenvalue=spec.max_eigenvalue,
            cluster_rtol=spec.cluster_rtol,
            dim=len(q_mats),
        )
        phi = modes.vectors[:, : modes.num_kept]
        lam = modes.eigenvalues[: modes.num_kept]
        reduced = np.stack([phi.T @ (q @ phi) for q in q_mats])
        reduced = 0.5 * (reduced + reduced.transpose(0, 2, 1))
        integrals = phi.T @ (m_mat @ np.ones(spec.num_nodes))
        ctx.state = (spec, k_mat, m_mat, q_mats, modes)
        device = stiffness.device
        ctx.device = device

        def out(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, dtype=DTYPE, device=device)

        count = lam.size
        return out(lam), out(np.zeros((count, count))), out(reduced), out(integrals)

    @staticmethod
    def backward(ctx, grad_lam, grad_coupling, grad_moments, grad_integrals):  # noqa: D102
        spec, k_mat, m_mat, q_mats, modes = ctx.state
        count = modes.num_kept
        grads = [
            _numpy_or_zeros(g, shape)
            for g, shape in (
                (grad_lam, (count,)),
                (grad_coupling, (count, count)),
                (grad_moments, (len(q_mats), count, count)),
                (grad_integrals, (count,)),
            )
        ]
        coeffs = adjoint_coefficients(
            k_mat,
            m_mat,
            q_mats,
            modes,
            *grads,
            cluster_rtol=spec.cluster_rtol,
            solver_rtol=spec.solver_rtol,
        )
        return (*element_adjoints(spec.elements, coeffs, ctx.device), None)


def _numpy_or_zeros(grad: torch.Tensor | None, shape: tuple[int, ...]) -> np.ndarray:
    if grad is None:
        return np.zeros(shape)
    return grad.detach().cpu().numpy().astype(np.float64)


@dataclass(frozen=True)
class AdjointFactors:
    """Low-rank adjoints: dLoss/dK = sym(U_K Phi^T), dLoss/dM = sym(U_M Phi^T + u_1 1^T),
    dLoss/dQ_k = sym(U_Qk Phi^T), all (N, L) except u_1 (N,)."""

    phi: np.ndarray
    stiffness: np.ndarray
    mass: np.ndarray
    mass_ones: np.ndarray
    moments: np.ndarray


def adjoint_coefficients(
    k_mat,
    m_mat,
    q_mats,
    modes: ModeSet,
    grad_lam,
    grad_coupling,
    grad_moments,
    grad_integrals,
    *,
    cluster_rtol: float,
    solver_rtol: float,
) -> AdjointFactors:
    """Adjoint of (lambda, W, Phi^T Q_k Phi, Phi^T M 1) w.r.t. (K, M, Q_k) as low-rank
    factors (docs/eigen_derivatives.md, section "Adjoint")."""
    count = modes.num_kept
    phi = modes.vectors[:, :count]
    lam = modes.eigenvalues[:count]
    labels = cluster_labels(lam, cluster_rtol, max(lam[-1], 1e-300))
    same = labels[:, None] == labels[None, :]
    off_diag = same & ~np.eye(count, dtype=bool)
    sbar = 0.5 * (grad_moments + grad_moments.transpose(0, 2, 1))
    wbar = np.where(off_diag, 0.5 * (grad_coupling + grad_coupling.T), 0.0)
    ones = np.ones(phi.shape[0])
    # G = dLoss/dPhi at fixed matrices; H = Phi^T G
    g_moments = sum(2.0 * (q @ phi) @ s for q, s in zip(q_mats, sbar, strict=True))
    g_full = g_moments + np.outer(m_mat @ ones, grad_integrals)
    h = phi.T @ g_full
    gap = lam[None, :] - lam[:, None]  # gap[j, i] = lambda_i - lambda_j
    inter = np.divide(h, gap, out=np.zeros_like(h), where=~same)
    f_k = inter + wbar + np.diag(grad_lam)
    f_m = (
        -inter * lam[None, :]
        - 0.5 * np.where(same, h, 0.0)
        - 0.5 * (lam[:, None] + lam[None, :]) * wbar
        - np.diag(grad_lam * lam)
    )
    rhs = np.asarray(g_moments) if np.ndim(g_moments) else np.zeros_like(phi)
    y = projected_shifted_solve(k_mat, m_mat, modes, rhs, rtol=solver_rtol)
    return AdjointFactors(
        phi=phi,
        stiffness=phi @ f_k - y,
        mass=phi @ f_m + y * lam,
        mass_ones=phi @ grad_integrals,
        moments=np.stack([phi @ s for s in sbar]),
    )


def element_adjoints(
    elements: np.ndarray, factors: AdjointFactors, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients w.r.t. the element values: entry (e, a, b) of sym(U V^T) at the nodes
    (elements[e, a], elements[e, b])."""
    phi = torch.as_tensor(factors.phi)
    el = torch.as_tensor(elements)
    pieces: list[list[torch.Tensor]] = [[], [], []]
    left_k = torch.as_tensor(factors.stiffness)
    left_m = torch.as_tensor(np.hstack([factors.mass, factors.mass_ones[:, None]]))
    right_m = torch.cat([phi, torch.ones(phi.shape[0], 1, dtype=DTYPE)], dim=1)
    left_q = torch.as_tensor(factors.moments)
    for start in range(0, el.shape[0], _CHUNK_ELEMENTS):
        idx = el[start : start + _CHUNK_ELEMENTS]
        right = phi[idx]  # (e, n, L)
        pieces[0].append(_sym(left_k[idx] @ right.transpose(1, 2)))
        pieces[1].append(_sym(left_m[idx] @ right_m[idx].transpose(1, 2)))
        pieces[2].append(_sym(torch.einsum("kenl,eml->kenm", left_q[:, idx], right)))
    stiffness, mass = torch.cat(pieces[0]), torch.cat(pieces[1])
    moments = torch.cat(pieces[2], dim=1)
    return stiffness.to(device), mass.to(device), moments.to(device)


def _sym(blocks: torch.Tensor) -> torch.Tensor:
    return 0.5 * (blocks + blocks.transpose(-1, -2))
