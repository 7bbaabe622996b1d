"""The lowest modes of a symmetric pencil with a buffer, and the projected shifted solves of
the adjoint (numpy/scipy, no autograd); used by :mod:`mf_dmri.fem.eigen_backward` and
:mod:`mf_dmri.fem.permeable_eigen`.

* :func:`lowest_modes`: every mode of ``K phi = lambda M phi`` up to a count or a cutoff,
  never cutting a degenerate cluster, plus a few "buffer" modes beyond, by the project's one
  eigensolver (:func:`mf_dmri.fem.eigensolver.lowest_spectrum`: inertia-counted spectrum
  slices, shift-invert block Lanczos).  The exact null vectors (one per connected piece of
  the mesh for a Neumann stiffness) come first with eigenvalue exactly 0.
* :func:`projected_shifted_solve`: ``(K - lambda_i M) y_i = P^T b_i`` with ``y_i``
  M-orthogonal to the kept modes, all columns at once by block preconditioned conjugate
  gradients.  On the M-orthogonal complement of a cluster-complete set of the lowest modes
  ``K - lambda_i M`` is positive definite (its eigenvalues there are ``lambda_k - lambda_i
  > 0``), so CG applies.  The preconditioner reuses the eigensolver's own factorisation of
  ``K - sigma M`` (its top slice, ``sigma`` below every mode left out of the computed set, so
  the factor is positive definite on that complement), applied to the whole block of
  right-hand sides at once, plus the exact inverse on the buffer modes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from mf_dmri.fem.eigensolver import (
    ShiftInvertLanczos,
    Spectrum,
    extend_spectrum,
    lowest_spectrum,
)
from mf_dmri.fem.sparse_factor import ShiftedFactor

logger = logging.getLogger(__name__)

#: Growth factor of the threshold when more modes are needed.
_GROWTH = 1.25


@dataclass(frozen=True)
class ModeSet:
    """Lowest eigenpairs of one pencil: the first ``num_kept`` columns are the kept modes
    (``num_zero`` exact zero modes first), the rest is the buffer used by the backward;
    ``factor`` is the eigensolver's factorisation reused by the adjoint solves."""

    eigenvalues: np.ndarray
    vectors: np.ndarray
    num_kept: int
    num_zero: int
    factor: ShiftedFactor | None


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


def weyl_threshold(count: int, weyl_volume: float, dim: int) -> float:
    """Eigenvalue below which Weyl's law puts ``count`` modes, for a domain of volume
    ``weyl_volume`` (interior term: n = V lambda^(3/2) / (6 pi^2) in 3-D, V lambda / (4 pi)
    in 2-D)."""
    if dim == 3:
        return (6 * math.pi**2 * count / weyl_volume) ** (2.0 / 3.0)
    return 4 * math.pi * count / weyl_volume


def lowest_modes(
    stiffness: sp.csr_matrix,
    mass: sp.csr_matrix,
    *,
    num_modes: int | None,
    max_eigenvalue: float | None,
    cluster_rtol: float,
    dim: int,
    null_vectors: np.ndarray | None = None,
    weyl_volume: float | None = None,
    min_buffer: int = 8,
    solver: ShiftInvertLanczos | None = None,
) -> ModeSet:
    """All modes up to ``num_modes`` (extended to close the last cluster) or up to
    ``max_eigenvalue`` [1/m^2] (inclusive, cluster-complete), plus at least ``min_buffer``
    buffer modes beyond them.

    ``null_vectors`` (N, z): exact M-orthonormal null vectors of K (default: the piece
    indicators of :func:`zero_modes`); ``weyl_volume``: the volume in Weyl's law for the
    first threshold guess (default ``1^T M 1``).
    """
    if (num_modes is None) == (max_eigenvalue is None):
        raise ValueError("give exactly one of num_modes and max_eigenvalue")
    nulls = zero_modes(mass) if null_vectors is None else null_vectors
    n = mass.shape[0]
    volume = float(np.sum(mass @ np.ones(n))) if weyl_volume is None else weyl_volume
    if n <= (solver or ShiftInvertLanczos()).dense_limit:
        threshold = math.inf  # dense: every mode, so the adjoint solves are exact
    elif num_modes is not None:
        threshold = weyl_threshold(int(1.15 * num_modes) + min_buffer, volume, dim)
    else:
        threshold = max_eigenvalue * 1.05
    spectrum = lowest_spectrum(
        stiffness, mass, threshold, deflation=nulls, dimension=dim, solver=solver
    )
    while True:
        lam = spectrum.eigenvalues
        kept = _kept_count(lam, num_modes, max_eigenvalue, cluster_rtol) if lam.size else None
        if kept is not None and kept + min_buffer <= lam.size:
            break
        if lam.size >= n - 1:
            if kept is not None and kept < lam.size:
                break
            raise ValueError(
                f"the mesh has only {n} degrees of freedom, too few for the requested "
                "modes; refine the mesh or ask for fewer modes"
            )
        threshold = _next_threshold(spectrum, threshold, num_modes, min_buffer, dim)
        spectrum = extend_spectrum(
            stiffness, mass, spectrum, threshold, dimension=dim, solver=solver
        )
    return _mode_set(spectrum, kept)


def _next_threshold(spectrum: Spectrum, threshold, num_modes, min_buffer, dim) -> float:
    """A higher threshold: scaled by Weyl's law towards the wanted count, at least x1.25."""
    have = max(spectrum.eigenvalues.size, 1)
    want = (num_modes or have) + 2 * min_buffer
    ratio = max((1.1 * want / have) ** (2.0 / dim), _GROWTH)
    return threshold * ratio


def _mode_set(spectrum: Spectrum, kept: int) -> ModeSet:
    return ModeSet(
        eigenvalues=spectrum.eigenvalues,
        vectors=spectrum.vectors,
        num_kept=kept,
        num_zero=spectrum.num_zero,
        factor=spectrum.factor,
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
        exact = buffer @ ((buffer.T @ r) / buffer_gap[:, columns])
        if modes.factor is None:  # dense: the buffer is the whole complement
            return exact
        inner = r - mass_all @ (modes.vectors.T @ r)
        z = modes.factor.solve(inner)
        z -= modes.vectors @ (mass_all.T @ z)
        return z + exact

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
