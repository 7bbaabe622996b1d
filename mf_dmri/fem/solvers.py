"""Eigensolvers for ``K phi = lambda M phi`` returning ALL eigenpairs below a threshold.

Three back-ends (compared in docs/fem_eigensolver.md):

* ``"shift-invert"``: ARPACK (scipy ``eigsh``) in shift-invert mode on a SuperLU factor of
  ``K - sigma M`` (symmetric ordering, diagonal pivots).  The same kind of factor gives the
  inertia of ``K - T M`` (Sylvester's law on ``A = P^T L D L^T P``), i.e. the exact number of
  eigenvalues below ``T``, so the result is checked complete.  Many modes are computed in
  spectrum slices of at most ``chunk`` modes, each with its own shift.
* ``"lobpcg"``: LOBPCG preconditioned with smoothed-aggregation AMG (pyamg); the block grows
  until it reaches past ``T``; completeness is checked with one inertia count.
* ``"dense"``: LAPACK ``eigh`` on dense matrices (small meshes only).

Every back-end returns eigenvalues ascending and M-orthonormal eigenvectors.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
import scipy.sparse.linalg as sla

_LOG = logging.getLogger(__name__)

SOLVERS = ("dense", "shift-invert", "lobpcg")


class IncompleteSpectrumError(RuntimeError):
    """An eigensolver returned fewer eigenpairs below the threshold than the inertia count."""


@dataclass(frozen=True)
class EigenPairs:
    """Eigenvalues (n,) [1/m^2] ascending and M-orthonormal eigenvectors (dofs, n)."""

    eigenvalues: np.ndarray
    vectors: np.ndarray


def symmetric_factor(matrix: sp.spmatrix):
    """SuperLU factor of a symmetric matrix with a symmetric permutation and diagonal pivots
    (an LDL^T in disguise), so that ``diag(U)`` carries the inertia."""
    factor = sla.splu(
        sp.csc_matrix(matrix),
        permc_spec="MMD_AT_PLUS_A",
        diag_pivot_thresh=0.0,
        options={"SymmetricMode": True},
    )
    if not np.array_equal(factor.perm_r, factor.perm_c):
        raise ArithmeticError(
            "SuperLU pivoted off the diagonal: inertia unavailable at this "
            "shift; move the shift slightly"
        )
    return factor


def count_below(stiffness: sp.spmatrix, mass: sp.spmatrix, shift: float) -> int:
    """Exact number of eigenvalues of ``K phi = lambda M phi`` below ``shift`` [1/m^2]."""
    for attempt in range(4):
        trial = shift * (1.0 + 1e-9 * attempt)
        try:
            factor = symmetric_factor(stiffness - trial * mass)
        except (ArithmeticError, RuntimeError):  # exactly singular or off-diagonal pivot
            continue
        pivots = factor.U.diagonal()
        if np.all(pivots != 0):
            return int((pivots < 0).sum())
    raise ArithmeticError(f"could not factor K - {shift:g} M to count eigenvalues")


def solve_dense(stiffness: sp.spmatrix, mass: sp.spmatrix, threshold: float) -> EigenPairs:
    """All eigenpairs below ``threshold`` [1/m^2] from LAPACK on dense matrices."""
    values, vectors = la.eigh(stiffness.toarray(), mass.toarray(), driver="gvd")
    keep = values < threshold
    return EigenPairs(values[keep], vectors[:, keep])


def solve_shift_invert(
    stiffness: sp.spmatrix,
    mass: sp.spmatrix,
    threshold: float,
    chunk: int = 400,
    dimension: int = 3,
) -> EigenPairs:
    """All eigenpairs below ``threshold`` [1/m^2] by shift-invert ARPACK in spectrum slices
    of at most about ``chunk`` modes; the count is checked against the inertia."""
    total = count_below(stiffness, mass, threshold)
    if total >= stiffness.shape[0] - 2:
        return solve_dense(stiffness, mass, threshold)
    lower, done = -1e-3 * threshold, 0
    values, vectors = [], []
    while done < total:
        upper, upper_count = _next_boundary(
            stiffness, mass, threshold, total, done, chunk, dimension
        )
        slice_pairs = _slice(stiffness, mass, lower, upper, upper_count - done)
        values.append(slice_pairs.eigenvalues)
        vectors.append(slice_pairs.vectors)
        lower, done = upper, upper_count
    pairs = EigenPairs(np.concatenate(values), np.concatenate(vectors, axis=1))
    return _reorthogonalise_near_boundaries(stiffness, mass, pairs) if len(values) > 1 else pairs


def _next_boundary(stiffness, mass, threshold, total, done, chunk, dimension):
    """Upper end of the next slice (and the eigenvalue count below it), about ``chunk`` modes
    above ``done``, guessed from Weyl's law and corrected by inertia counts."""
    if total - done <= chunk:
        return threshold, total
    guess = threshold * ((done + chunk) / total) ** (2.0 / dimension)
    low, high = 0.0, threshold
    count = count_below(stiffness, mass, guess)
    for _ in range(6):
        if 0.4 * chunk <= count - done <= chunk:
            break
        if count - done > chunk:
            high = guess
        else:
            low = guess
        guess = 0.5 * (low + high)
        count = count_below(stiffness, mass, guess)
    if count <= done:
        raise IncompleteSpectrumError("spectrum slicing made no progress; lower the chunk")
    return guess, count


def _slice(stiffness, mass, lower: float, upper: float, expected: int) -> EigenPairs:
    """The ``expected`` eigenpairs in [lower, upper) from ARPACK, shifted to the middle (or to
    ``lower`` for the lowest slice, which starts just below zero)."""
    sigma = lower if lower < 0 else 0.5 * (lower + upper)
    factor = symmetric_factor(stiffness - sigma * mass)
    operator = sla.LinearOperator(stiffness.shape, matvec=factor.solve, dtype=np.float64)
    size = stiffness.shape[0]
    k = min(expected + max(6, expected // 10), size - 2)
    values, vectors = sla.eigsh(
        stiffness,
        k=k,
        M=mass,
        sigma=sigma,
        OPinv=operator,
        which="LM",
        ncv=min(size - 1, max(2 * k + 1, k + 32)),
    )
    keep = (values >= lower) & (values < upper)
    if int(keep.sum()) != expected:
        raise IncompleteSpectrumError(
            f"ARPACK found {int(keep.sum())} eigenvalues in [{lower:.6g}, {upper:.6g}) where "
            f"the inertia counts {expected}; try solver='dense' or a smaller chunk"
        )
    order = np.argsort(values[keep])
    return EigenPairs(values[keep][order], vectors[:, keep][:, order])


def _reorthogonalise_near_boundaries(
    stiffness, mass, pairs: EigenPairs, rtol: float = 1e-3
) -> EigenPairs:
    """Rayleigh-Ritz on every run of close eigenvalues: modes from different slices that are
    nearly degenerate are only approximately M-orthogonal otherwise."""
    values, vectors = pairs.eigenvalues.copy(), pairs.vectors.copy()
    scale = max(float(values[-1]), 1e-300)
    start = 0
    for stop in range(1, values.size + 1):
        if stop < values.size and values[stop] - values[stop - 1] <= rtol * scale:
            continue
        if stop - start > 1:
            block = vectors[:, start:stop]
            gram = block.T @ (mass @ block)
            proj = block.T @ (stiffness @ block)
            local_values, local_vectors = la.eigh(0.5 * (proj + proj.T), 0.5 * (gram + gram.T))
            values[start:stop] = local_values
            vectors[:, start:stop] = block @ local_vectors
        start = stop
    return EigenPairs(values, vectors)


def solve_lobpcg(
    stiffness: sp.spmatrix,
    mass: sp.spmatrix,
    threshold: float,
    tol: float = 1e-10,
    max_iterations: int = 1000,
    seed: int = 0,
) -> EigenPairs:
    """All eigenpairs below ``threshold`` [1/m^2] by AMG-preconditioned LOBPCG (pyamg)."""
    try:
        import pyamg
    except ImportError as exc:
        raise ImportError("solver='lobpcg' needs pyamg: pip install pyamg") from exc
    total = count_below(stiffness, mass, threshold)
    size = stiffness.shape[0]
    if 5 * (total + 10) >= size:
        return solve_dense(stiffness, mass, threshold)
    # work on O(1) matrices so that the (absolute) LOBPCG tolerance is a relative one
    k_scale, m_scale = stiffness.diagonal().max(), mass.diagonal().max()
    scaled_k, scaled_m = stiffness / k_scale, mass / m_scale
    factor = m_scale / k_scale  # lambda = scaled eigenvalue / factor
    shift = threshold * factor / max(total, 1)
    hierarchy = pyamg.smoothed_aggregation_solver(sp.csr_matrix(scaled_k + shift * scaled_m))
    block = np.random.default_rng(seed).standard_normal((size, total + max(5, total // 10)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # convergence is checked below
        values, vectors = sla.lobpcg(
            scaled_k,
            block,
            B=scaled_m,
            M=hierarchy.aspreconditioner(),
            largest=False,
            tol=tol,
            maxiter=max_iterations,
        )
    values = values / factor
    vectors = vectors / np.sqrt(m_scale)
    order = np.argsort(values)
    values, vectors = values[order], vectors[:, order]
    keep = values < threshold
    if int(keep.sum()) != total:
        raise IncompleteSpectrumError(
            f"LOBPCG found {int(keep.sum())} eigenvalues below {threshold:.6g} where the "
            f"inertia counts {total}; use solver='shift-invert'"
        )
    return EigenPairs(values[keep], vectors[:, keep])


def solve(
    stiffness: sp.spmatrix,
    mass: sp.spmatrix,
    threshold: float,
    solver: str,
    chunk: int = 400,
    dimension: int = 3,
) -> EigenPairs:
    """Dispatch to one back-end by name (one of :data:`SOLVERS`)."""
    if solver == "dense":
        return solve_dense(stiffness, mass, threshold)
    if solver == "shift-invert":
        return solve_shift_invert(stiffness, mass, threshold, chunk=chunk, dimension=dimension)
    if solver == "lobpcg":
        return solve_lobpcg(stiffness, mass, threshold)
    raise ValueError(f"solver must be one of {SOLVERS} or 'auto', got {solver!r}")
