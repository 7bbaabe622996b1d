"""Shift-invert block Lanczos for the eigenpairs of ``K phi = lambda M phi`` in one window.

With the factor ``F = K - sigma M`` (:class:`~mf_dmri.fem.sparse_factor.ShiftedFactor`), the
operator ``S = F^{-1} M`` is self-adjoint in the M-inner product and ``S phi = mu phi`` with
``mu = 1 / (lambda - sigma)``: the eigenvalues nearest the shift become the largest in
magnitude.  The Krylov basis ``V`` (``V^T M V = I``) grows by blocks of ``b`` columns:

    S V_j = V C_j + V_{j+1} R_j,    T = V^T M S V  (m x m, from the coefficients C, R),

each new block solved for all its columns at once and M-orthogonalised against the whole basis
by two passes of classical Gram-Schmidt plus Cholesky-QR (BLAS-3 throughout).  A Ritz pair
``(theta, y)`` of ``T`` has the exact residual ``||S V y - theta V y||_M = ||R_last y_last||``;
it has converged when that is at most ``t * |theta| * min(1, |lambda| / |lambda - sigma|)``
(the residual ``K x - lambda M x = -(lambda - sigma) F r`` relative to ``lambda``), with
``t = tolerance / 100`` at first.  The window is done when the converged Ritz values
``sigma + 1/theta`` inside it number exactly the inertia count given by the caller; a final
Rayleigh-Ritz step with ``K`` and ``M`` gives M-orthonormal vectors and their Rayleigh
quotients, whose true residuals ``||K x - lambda M x||_{M^-1} / lambda`` must be at most
``tolerance``; if not, the Rayleigh-Ritz step is repeated on the whole basis, and if that
fails too ``t`` is tightened tenfold, the next blocks' solves get one step of iterative
refinement and the basis grows on, down to ``t = 1e-13`` (then :class:`ResidualFloorError`).
Vectors in ``deflation`` (exact zero modes, modes of a neighbouring window) are projected
out of every block, so the window's modes are M-orthogonal to them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as la

from mf_dmri.fem.error_estimates import mass_inverse_norms
from mf_dmri.fem.sparse_factor import ShiftedFactor


class IncompleteSpectrumError(RuntimeError):
    """The eigensolver found fewer (or more) eigenpairs in a window than the inertia count."""


class ResidualFloorError(IncompleteSpectrumError):
    """All counted eigenpairs were found, but round-off keeps a residual above tolerance."""


@dataclass(frozen=True)
class WindowModes:
    """Eigenpairs of one window: eigenvalues (c,) ascending, M-orthonormal vectors (N, c),
    the number of solved columns, the final basis size and wall times [s]."""

    eigenvalues: np.ndarray
    vectors: np.ndarray
    solves: int
    basis_size: int
    timings: dict = field(compare=False)


@dataclass
class _Basis:
    """Growing M-orthonormal Krylov basis V with M V, preallocated."""

    vectors: np.ndarray
    mass_vectors: np.ndarray
    size: int = 0

    def append(self, block: np.ndarray, mass_block: np.ndarray) -> None:
        end = self.size + block.shape[1]
        if end > self.vectors.shape[1]:
            grow = max(end, 2 * self.vectors.shape[1])
            self.vectors = _resized(self.vectors, grow)
            self.mass_vectors = _resized(self.mass_vectors, grow)
        self.vectors[:, self.size : end] = block
        self.mass_vectors[:, self.size : end] = mass_block
        self.size = end

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vectors[:, : self.size], self.mass_vectors[:, : self.size]


def _resized(array: np.ndarray, columns: int) -> np.ndarray:
    out = np.empty((array.shape[0], columns), order="F")
    out[:, : array.shape[1]] = array
    return out


def _project_out(block, vectors, mass_vectors) -> np.ndarray:
    """Coefficients c (removed in place) with ``block -= vectors @ c``, c = (M V)^T block."""
    coeffs = mass_vectors.T @ block
    block -= vectors @ coeffs
    return coeffs


def _cholesky_qr(block, mass) -> tuple[np.ndarray, np.ndarray] | None:
    """``block = Q R`` with ``Q^T M Q = I``, or None when the block is (nearly) rank deficient."""
    gram = block.T @ (mass @ block)
    try:
        factor = la.cholesky(0.5 * (gram + gram.T))
    except la.LinAlgError:
        return None
    diagonal = np.abs(np.diag(factor))
    if diagonal.min() <= 1e-8 * diagonal.max():
        return None
    return la.solve_triangular(factor, block.T, trans="T").T, factor


def next_block(raw, basis: _Basis, deflation, mass, rng) -> tuple[np.ndarray, np.ndarray]:
    """M-orthonormal Q with ``raw = V C + Q R`` (V the basis, deflated directions dropped);
    returns (C stacked over R, Q).  Directions already in the span are replaced by random
    ones (with zero rows of R), so the basis keeps growing."""
    vectors, mass_vectors = basis.view()
    defl, mass_defl = deflation
    block = raw.copy()
    coeffs = np.zeros((vectors.shape[1], block.shape[1]))
    scale = np.sqrt(np.einsum("ij,ij->j", block, mass @ block))
    for _ in range(2):
        _project_out(block, defl, mass_defl)
        coeffs += _project_out(block, vectors, mass_vectors)
    norms = np.sqrt(np.maximum(np.einsum("ij,ij->j", block, mass @ block), 0.0))
    lost = norms <= 1e-10 * np.maximum(scale, 1e-300)
    if lost.any():  # invariant subspace reached in these directions: restart them at random
        block[:, lost] = rng.standard_normal((block.shape[0], int(lost.sum())))
        for _ in range(2):
            _project_out(block, defl, mass_defl)
            _project_out(block, vectors, mass_vectors)
    first = _cholesky_qr(block, mass)
    if first is None:
        raise IncompleteSpectrumError("the Krylov block lost rank; lower the block size")
    block, upper = first
    second = _cholesky_qr(block, mass)  # Cholesky-QR twice: M-orthonormal to round-off
    if second is None:
        raise IncompleteSpectrumError("the Krylov block lost rank; lower the block size")
    block, upper2 = second
    coupling = upper2 @ upper
    coupling[:, lost] = 0.0  # random restarts: no coupling to the previous block
    return np.vstack([coeffs, coupling]), block


def window_eigenpairs(
    stiffness,
    mass,
    factor: ShiftedFactor,
    window: tuple[float, float],
    expected: int,
    deflation: tuple[np.ndarray, np.ndarray],
    *,
    block_size: int,
    tolerance: float,
    max_basis: int,
    seed: int = 0,
) -> WindowModes:
    """The ``expected`` eigenpairs with ``window[0] <= lambda < window[1]`` [1/m^2], M-orthogonal
    to ``deflation = (D, M D)``, each with relative residual ``||K x - lambda M x||_{M^-1} /
    max(lambda, 1e-3 window[1]) <= tolerance``; raises :class:`IncompleteSpectrumError` when
    the basis reaches ``max_basis`` columns first (see the module docstring)."""
    size = stiffness.shape[0]
    rng = np.random.default_rng(seed)
    timings = {"solve": 0.0, "orthogonalisation": 0.0, "rayleigh_ritz": 0.0}
    capacity = min(max_basis, 3 * expected + 4 * block_size) + block_size
    basis = _Basis(np.empty((size, capacity), order="F"), np.empty((size, capacity), order="F"))
    start = rng.standard_normal((size, block_size))
    _, block = next_block(start, basis, deflation, mass, rng)
    basis.append(block, mass @ block)
    projected = np.zeros((0, 0))
    next_check, ritz_tolerance = expected, max(1e-2 * tolerance, 1e-13)
    refine = None  # K - sigma M once the solves' round-off limits the residuals
    while True:
        m = basis.size
        clock = time.perf_counter()
        image = factor.solve(basis.mass_vectors[:, m - block_size : m], refine)
        timings["solve"] += time.perf_counter() - clock
        clock = time.perf_counter()
        coefficients, block = next_block(image, basis, deflation, mass, rng)
        projected = _grown(projected, coefficients, block_size)
        timings["orthogonalisation"] += time.perf_counter() - clock
        if m >= next_check or m + block_size > max_basis:
            clock = time.perf_counter()
            coupling = coefficients[m:]
            ritz = _ritz_check(projected, coupling, factor.shift, window, expected, ritz_tolerance)
            for whole in (False, True):
                modes = (
                    None
                    if ritz is None
                    else _final_pairs(stiffness, mass, basis, ritz, window, whole)
                )
                if modes is not None and modes[0].size == expected and modes[2] <= tolerance:
                    timings["rayleigh_ritz"] += time.perf_counter() - clock
                    return WindowModes(modes[0], modes[1], m, m, timings)
            timings["rayleigh_ritz"] += time.perf_counter() - clock
            if modes is not None:  # Ritz residuals small, true ones not yet: tighten and
                if ritz_tolerance <= 1e-13:  # refine the solves, up to round-off
                    raise ResidualFloorError(
                        f"relative residual {modes[2]:.1e} > tolerance {tolerance:.1e} at the "
                        "round-off floor of the shift-invert solves"
                    )
                ritz_tolerance *= 0.1
                refine = (stiffness - factor.shift * mass).tocsr()
            if m + block_size > max_basis:
                raise IncompleteSpectrumError(
                    f"found fewer than the {expected} eigenvalues that the inertia counts in "
                    f"[{window[0]:.6g}, {window[1]:.6g}) within {m} Krylov vectors; use smaller "
                    "spectrum slices (ShiftInvertLanczos(slice_modes=...))"
                )
            next_check = m + max(block_size, m // 8)
        clock = time.perf_counter()
        basis.append(block, mass @ block)
        timings["orthogonalisation"] += time.perf_counter() - clock


def _grown(projected: np.ndarray, coefficients: np.ndarray, block_size: int) -> np.ndarray:
    """Projected matrix T with the new column block [C; R] (and its transpose as rows)."""
    m = projected.shape[0] + block_size
    out = np.zeros((m, m))
    out[: m - block_size, : m - block_size] = projected
    column = coefficients[:m]
    out[:, m - block_size :] = column
    out[m - block_size :, :] = column.T
    return out


def _ritz_check(projected, coupling, shift, window, expected, tolerance):
    """Ritz vectors (m, expected) of the converged window eigenvalues, or None if not done."""
    m = projected.shape[0]
    theta, ritz = la.eigh(0.5 * (projected + projected.T))
    residual = np.linalg.norm(coupling @ ritz[m - coupling.shape[1] :], axis=0)
    with np.errstate(divide="ignore"):
        lam = shift + 1.0 / theta
    inside = (lam >= window[0]) & (lam < window[1])
    # K x - lambda M x = -(lambda - sigma) F r: scale so that the tolerance is relative to lambda
    weight = np.minimum(1.0, np.abs(lam) / np.maximum(np.abs(lam - shift), 1e-300))
    converged = inside & (residual <= tolerance * np.abs(theta) * weight)
    found = int(converged.sum())
    if found > expected:
        raise IncompleteSpectrumError(
            f"found {found} eigenvalues in [{window[0]:.6g}, {window[1]:.6g}) where the inertia "
            f"counts {expected}: an eigenvalue lies within round-off of a slice boundary"
        )
    return ritz[:, converged] if found == expected else None


def _final_pairs(stiffness, mass, basis: _Basis, ritz, window, whole: bool):
    """Rayleigh-Ritz of K, M (the Galerkin approximation of the original pencil) on the
    converged Ritz vectors, or with ``whole`` on the whole Krylov basis (free of the round-off
    that ``T`` carries when the shift is close to an eigenvalue), keeping the eigenpairs inside
    ``window`` with the smallest residuals: ascending values, M-orthonormal vectors and their
    largest relative residual ``||K x - lambda M x||_{M^-1} / lambda``."""
    size, count = ritz.shape
    if whole:
        vectors, mass_vectors = basis.vectors[:, :size], basis.mass_vectors[:, :size]
    else:
        vectors = basis.vectors[:, :size] @ ritz
        mass_vectors = mass @ vectors
    reduced_k = vectors.T @ (stiffness @ vectors)
    reduced_m = vectors.T @ mass_vectors
    values, rotation = la.eigh(0.5 * (reduced_k + reduced_k.T), 0.5 * (reduced_m + reduced_m.T))
    inside = np.flatnonzero((values >= window[0]) & (values < window[1]))
    values, vectors = values[inside], vectors @ rotation[:, inside]
    if inside.size < count:
        return values, vectors, np.inf
    # relative to lambda, or to 1e-3 of the window's top for eigenvalues close to zero
    scale = np.maximum(np.abs(values), 1e-3 * max(abs(window[1]), abs(window[0])))
    residuals = mass_inverse_norms(mass, stiffness @ vectors - (mass @ vectors) * values) / scale
    best = np.sort(np.argsort(residuals, kind="stable")[:count])
    return values[best], vectors[:, best], float(residuals[best].max(initial=0.0))
