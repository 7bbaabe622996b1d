"""Sparse linear algebra behind :mod:`mf_dmri.fem.eigen_backward` (numpy/scipy, no autograd).

* :func:`lowest_modes`: every Neumann mode of ``K phi = lambda M phi`` up to a count or a
  cutoff, never cutting a degenerate cluster.  The zero modes (one per connected piece of
  the mesh) are exact: the normalised indicator of each piece with eigenvalue 0.  The
  other modes come from ARPACK in shift-invert mode (one sparse LU of ``K - sigma M`` with
  ``sigma`` slightly negative) with the zero modes projected out of the operator, then a
  Rayleigh-Ritz step on the computed subspace so the returned data are exactly Galerkin.
* :func:`projected_shifted_solve`: ``(K - lambda_i M) y_i = P^T b_i`` with ``y_i``
  M-orthogonal to the kept modes, one column per mode, by block preconditioned conjugate
  gradients.  On the M-orthogonal complement of a cluster-complete set of the lowest modes
  ``K - lambda_i M`` is positive definite (its eigenvalues there are ``lambda_k - lambda_i
  > 0``), so CG applies; the preconditioner is the same LU of ``K - sigma M`` plus the
  exact inverse on the extra "buffer" modes computed beyond the kept ones.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse.csgraph import connected_components

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModeSet:
    """Lowest eigenpairs of one mesh: the first ``num_kept`` columns are the kept modes
    (``num_zero`` exact zero modes first), the rest is the buffer used by the backward."""

    eigenvalues: np.ndarray
    vectors: np.ndarray
    num_kept: int
    num_zero: int
    factor: Any
    sigma: float


def zero_modes(mass: sp.csr_matrix) -> np.ndarray:
    """(N, c) M-orthonormal indicators of the c connected pieces of the mesh graph."""
    n = mass.shape[0]
    if (mass.diagonal() <= 0).any():
        bad = int(np.flatnonzero(mass.diagonal() <= 0)[0])
        raise ValueError(f"node {bad} belongs to no element (zero mass); remove unused nodes")
    count, labels = connected_components(mass, directed=False)
    indicators = np.zeros((n, count))
    indicators[np.arange(n), labels] = 1.0
    sizes = np.einsum("nc,nc->c", indicators, mass @ indicators)
    return indicators / np.sqrt(sizes)


def cluster_labels(eigenvalues: np.ndarray, rtol: float, scale: float) -> np.ndarray:
    """Integer cluster label of each sorted eigenvalue (gap <= rtol * scale: same cluster)."""
    gaps = np.diff(eigenvalues) > rtol * scale
    return np.concatenate([[0], np.cumsum(gaps)]).astype(np.int64)


def _weyl_count(volume: float, max_eigenvalue: float, dim: int) -> int:
    """Weyl estimate of the number of modes below ``max_eigenvalue`` (interior term)."""
    if dim == 3:
        return int(volume * max_eigenvalue**1.5 / (6 * math.pi**2))
    return int(volume * max_eigenvalue / (4 * math.pi))


def _nonzero_modes(stiffness, mass, zeros, factor, sigma: float, count: int):
    """``count`` lowest nonzero eigenpairs by deflated shift-invert Lanczos + Rayleigh-Ritz."""
    n = mass.shape[0]
    mass_zeros = mass @ zeros

    def deflated_solve(x: np.ndarray) -> np.ndarray:
        y = factor.solve(np.asarray(x, dtype=np.float64))
        return y - zeros @ (mass_zeros.T @ y)

    op = spla.LinearOperator((n, n), matvec=deflated_solve, dtype=np.float64)
    start = np.random.default_rng(12345).standard_normal(n)
    start -= zeros @ (mass_zeros.T @ start)
    ncv = min(n - zeros.shape[1], max(2 * count + 1, count + 32))
    _, vecs = spla.eigsh(
        stiffness, k=count, M=mass, sigma=sigma, OPinv=op, v0=start, ncv=ncv, which="LM", tol=0
    )
    vecs -= zeros @ (mass_zeros.T @ vecs)
    values, coeffs = la.eigh(vecs.T @ (stiffness @ vecs), vecs.T @ (mass @ vecs))
    vecs = vecs @ coeffs
    residual = np.linalg.norm(stiffness @ vecs - (mass @ vecs) * values, axis=0)
    scale = np.linalg.norm(mass @ vecs, axis=0) * max(abs(values[-1]), 1e-300)
    if (residual > 1e-8 * scale).any():
        raise RuntimeError(
            f"eigen-solve did not converge (relative residual "
            f"{float((residual / scale).max()):.1e}); check the mesh quality"
        )
    return values, vecs


def lowest_modes(
    stiffness: sp.csr_matrix,
    mass: sp.csr_matrix,
    *,
    num_modes: int | None,
    max_eigenvalue: float | None,
    cluster_rtol: float,
    dim: int,
    min_buffer: int = 8,
) -> ModeSet:
    """All modes up to ``num_modes`` (extended to close the last cluster) or up to
    ``max_eigenvalue`` [1/m^2] (inclusive, cluster-complete), plus at least ``min_buffer``
    buffer modes beyond them."""
    if (num_modes is None) == (max_eigenvalue is None):
        raise ValueError("give exactly one of num_modes and max_eigenvalue")
    zeros = zero_modes(mass)
    n, n_zero = mass.shape[0], zeros.shape[1]
    volume = float(np.sum(mass @ np.ones(n)))
    lam_scale = float(stiffness.diagonal().sum() / mass.diagonal().sum()) / n ** (2 / dim)
    sigma = -1e-2 * lam_scale
    factor = spla.splu(
        (stiffness - sigma * mass).tocsc(),
        permc_spec="MMD_AT_PLUS_A",
        diag_pivot_thresh=0.0,
        options={"SymmetricMode": True},
    )
    if num_modes is not None:
        wanted = num_modes - n_zero
    else:
        wanted = _weyl_count(volume, max_eigenvalue, dim)
    count = max(wanted + max(min_buffer, wanted // 4), 2 * min_buffer)
    limit = n - n_zero - 1
    while True:
        count = min(count, limit)
        values, vecs = _nonzero_modes(stiffness, mass, zeros, factor, sigma, count)
        lam = np.concatenate([np.zeros(n_zero), values])
        kept = _kept_count(lam, num_modes, max_eigenvalue, cluster_rtol)
        if kept is not None and kept + min_buffer <= lam.size:
            break
        if count == limit:
            if kept is not None and kept < lam.size:
                break
            raise ValueError(
                f"the mesh has only {n} nodes, too few for the requested "
                "modes; refine the mesh or ask for fewer modes"
            )
        count *= 2
    return ModeSet(
        eigenvalues=lam,
        vectors=np.hstack([zeros, vecs]),
        num_kept=kept,
        num_zero=n_zero,
        factor=factor,
        sigma=sigma,
    )


def _kept_count(
    lam: np.ndarray, num_modes: int | None, max_eigenvalue: float | None, rtol: float
) -> int | None:
    """Cluster-complete kept count, or None when more modes must be computed to know it."""
    if max_eigenvalue is not None:
        if lam[-1] <= max_eigenvalue:
            return None
        kept = int((lam <= max_eigenvalue).sum())
    else:
        kept = num_modes
    if kept >= lam.size:
        return None
    labels = cluster_labels(lam, rtol, max(lam[kept - 1], 1e-300))
    kept = int(np.searchsorted(labels, labels[kept - 1], side="right"))
    return kept if kept < lam.size else None


def projected_shifted_solve(
    stiffness: sp.csr_matrix,
    mass: sp.csr_matrix,
    modes: ModeSet,
    rhs: np.ndarray,
    *,
    rtol: float = 1e-12,
    max_iter: int = 2000,
) -> np.ndarray:
    """Columns ``y_i`` with ``(K - lambda_i M) y_i = P^T rhs_i`` and ``Phi^T M y_i = 0``,
    where ``Phi`` are the kept modes, ``lambda_i`` the i-th kept eigenvalue and
    ``P = I - Phi Phi^T M``; block preconditioned CG (see the module docstring)."""
    kept = modes.num_kept
    phi = modes.vectors[:, :kept]
    shifts = modes.eigenvalues[:kept]
    buffer = modes.vectors[:, kept:]
    buffer_gap = modes.eigenvalues[kept:, None] - shifts[None, :]  # (B, L) > 0
    mass_phi = mass @ phi
    mass_all = mass @ modes.vectors

    def project_residual(r: np.ndarray) -> np.ndarray:  # P^T r
        return r - mass_phi @ (phi.T @ r)

    def precondition(r: np.ndarray, columns: np.ndarray) -> np.ndarray:
        inner = r - mass_all @ (modes.vectors.T @ r)
        z = modes.factor.solve(inner)
        z -= modes.vectors @ (mass_all.T @ z)
        return z + buffer @ ((buffer.T @ r) / buffer_gap[:, columns])

    def apply(x: np.ndarray) -> np.ndarray:
        return stiffness @ x - (mass @ x) * shifts

    residual = project_residual(rhs)
    solution = np.zeros_like(rhs)
    active = np.linalg.norm(residual, axis=0) > 0  # columns still iterating
    if not active.any():
        return solution
    z = precondition(residual, np.ones(rhs.shape[1], dtype=bool))
    direction = z.copy()
    rz = np.einsum("ij,ij->j", residual, z)
    rz0 = np.where(active, rz, 1.0)
    for iteration in range(1, max_iter + 1):
        q = project_residual(apply(direction))
        pq = np.einsum("ij,ij->j", direction, q)
        alpha = np.divide(rz, pq, out=np.zeros_like(rz), where=active & (pq > 0))
        solution += direction * alpha
        residual -= q * alpha
        z = np.zeros_like(residual)
        z[:, active] = precondition(residual[:, active], active)
        rz_new = np.einsum("ij,ij->j", residual, z)
        active &= np.sqrt(np.abs(rz_new / rz0)) >= rtol
        if not active.any():
            logger.debug("projected CG converged in %d iterations", iteration)
            return solution - phi @ (mass_phi.T @ solution)
        beta = np.divide(rz_new, rz, out=np.zeros_like(rz), where=active & (rz != 0))
        direction = np.where(active, z + direction * beta, 0.0)
        rz = rz_new
    worst = float(np.sqrt(np.abs(rz_new / rz0)).max())
    raise RuntimeError(
        f"the adjoint solve did not converge in {max_iter} iterations "
        f"(relative residual {worst:.1e}); the gap between the last kept "
        "mode and the next one may be tiny: keep more modes"
    )
