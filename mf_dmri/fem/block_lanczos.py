"""Shift-invert block Lanczos for the eigenpairs of ``K phi = lambda M phi`` in one window.

With the factor ``F = K - sigma M`` (:class:`~mf_dmri.fem.sparse_factor.ShiftedFactor`), the
operator ``S = F^{-1} M`` is self-adjoint in the M-inner product and ``S phi = mu phi`` with
``mu = 1 / (lambda - sigma)``: the eigenvalues nearest the shift become the largest in
magnitude.  The Krylov basis ``V`` (``V^T M V = I``) grows by blocks of ``b`` columns:

    S V_j = V C_j + V_{j+1} R_j,    T = V^T M S V  (m x m, from the coefficients C, R),

each new block solved for all its columns at once (one multi-right-hand-side solve; refined
by one step of iterative refinement when the factor's measured backward error is above
``1e-14``: SuperLU factors an indefinite ``F`` without pivoting, PARDISO pivots only inside
its supernodes, and the round-off of their solves, left in the basis, otherwise sets a floor
under the residuals of the modes far from the shift) and M-orthogonalised by a pass against
the last two blocks (the three-term recurrence, with their kept M images), one pass of
classical Gram-Schmidt against the deflated directions and the whole basis at once (full
reorthogonalisation, a second one only for columns that lose more than 3/4 of their M-norm)
and Cholesky-QR twice, all BLAS-3.
``V`` is stored with the deflated directions in front of it; ``M V`` is not (each whole
projection multiplies the new block by ``M``: two sparse products per block when one pass
suffices, the second also giving the block's image for its Cholesky-QR).  A Ritz pair
``(theta, y)`` of ``T`` has the exact residual
``||S V y - theta V y||_M = ||R_last y_last||``; it has converged when that is at most
``t * |theta| * min(1, |lambda| / |lambda - sigma|)`` (the residual
``K x - lambda M x = -(lambda - sigma) F r`` relative to ``lambda``), with
``t = tolerance / 100`` at first.  ``T`` is checked from twice the counted modes on, every
``m / 16`` columns, first by its eigenvalues alone (fewer than the count inside the window:
not done), then with the eigenvectors of the Ritz values inside the window.  The window is
done when the converged Ritz values inside it number exactly the inertia count given by the
caller; the converged Ritz vectors ``V y`` are then M-orthonormal (``V`` is, and so are
the eigenvectors ``y`` of ``T``), and their Rayleigh quotients with ``K`` and ``M`` and the
residuals at them, ``||K x - lambda M x||_{M^-1} / lambda`` (formed explicitly, 64 modes at
a time, Jacobi-PCG on ``M``, or bounded above by ``||r||_{diag(M)^-1} / sqrt(c)`` when
``M >= c diag(M)`` is known, as for finite-element mass matrices), must be at most
``tolerance``;
if not, a Rayleigh-Ritz step with ``K`` and ``M`` is made on those vectors with the failing
ones replaced by ``F^{-1} M x`` (refined solves: one step of subspace iteration), then on
the whole basis, and if that fails too ``t`` is
tightened tenfold, the next blocks' solves are refined and the basis grows on, down to
``t = 1e-13`` (then :class:`ResidualFloorError`).
Vectors in ``deflation`` (exact zero modes, modes of a neighbouring window) are projected
out of every block, so the window's modes are M-orthogonal to them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as la

from mf_dmri.fem.error_estimates import rayleigh_residuals, residual_norms
from mf_dmri.fem.sparse_factor import ShiftedFactor

#: Backward error of a factor's solves above which every solve is refined once (a few
#: hundred times the unit round-off; see :meth:`ShiftedFactor.backward_error`).
_REFINED_ABOVE = 1e-14


class IncompleteSpectrumError(RuntimeError):
    """The eigensolver found fewer (or more) eigenpairs in a window than the inertia count."""


class ResidualFloorError(IncompleteSpectrumError):
    """All counted eigenpairs were found, but round-off keeps a residual above tolerance."""


@dataclass(frozen=True)
class WindowModes:
    """Eigenpairs of one window: eigenvalues (c,) ascending, M-orthonormal vectors (N, c),
    their residual norms ``||K x - lambda M x||_{M^-1}`` (c,) [1/m^2], the number of solved
    columns, the final basis size and wall times [s]."""

    eigenvalues: np.ndarray
    vectors: np.ndarray
    residual_norms: np.ndarray
    solves: int
    basis_size: int
    timings: dict = field(compare=False)


@dataclass
class _Basis:
    """Growing M-orthonormal basis, preallocated (N, capacity): the ``locked`` deflated
    directions D first, then the Krylov vectors V (``size`` columns), so that one pair of
    matrix products projects a block on both.  ``M V`` is not stored (each whole projection
    multiplies the new block by ``M``, a sparse product), except for the last two blocks
    (``recent_mass``), which project the three-term recurrence out of a new block without
    a sparse product."""

    vectors: np.ndarray
    locked: int = 0
    size: int = 0
    recent_mass: list = field(default_factory=list)

    @classmethod
    def with_deflation(cls, workspace: np.ndarray, deflation: np.ndarray) -> _Basis:
        workspace[:, : deflation.shape[1]] = deflation
        return cls(workspace, locked=deflation.shape[1])

    def append(self, block: np.ndarray, mass_block: np.ndarray) -> None:
        start = self.locked + self.size
        end = start + block.shape[1]
        if end > self.vectors.shape[1]:
            self.vectors = _resized(self.vectors, max(end, 2 * self.vectors.shape[1]))
        self.vectors[:, start:end] = block
        self.size += block.shape[1]
        self.recent_mass = [*self.recent_mass[-1:], mass_block]

    def view(self) -> np.ndarray:
        """The Krylov vectors V (N, size)."""
        return self.vectors[:, self.locked : self.locked + self.size]

    def whole(self) -> np.ndarray:
        """D and V side by side (N, locked + size)."""
        return self.vectors[:, : self.locked + self.size]

    def recent(self) -> tuple[np.ndarray, np.ndarray]:
        """The last (up to) two blocks of V and their M images."""
        width = sum(image.shape[1] for image in self.recent_mass)
        end = self.locked + self.size
        recent_mass = np.hstack(self.recent_mass) if width else np.zeros((len(self.vectors), 0))
        return self.vectors[:, end - width : end], recent_mass


def _resized(array: np.ndarray, columns: int) -> np.ndarray:
    out = np.empty((array.shape[0], columns), order="F")
    out[:, : array.shape[1]] = array
    return out


def _m_norms(block: np.ndarray, mass_block: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(np.einsum("ij,ij->j", block, mass_block), 0.0))


def _deflate(block: np.ndarray, deflation) -> None:
    """``block -= D (M D)^T block`` in place (D the deflated M-orthonormal vectors)."""
    defl, mass_defl = deflation
    if defl.shape[1]:
        block -= defl @ (mass_defl.T @ block)


def _cholesky_factor(block, mass_block) -> np.ndarray | None:
    """Upper R with ``block^T M block = R^T R`` (``mass_block = M block``), or None when the
    block is (nearly) rank deficient."""
    gram = block.T @ mass_block
    try:
        factor = la.cholesky(0.5 * (gram + gram.T))
    except la.LinAlgError:
        return None
    diagonal = np.abs(np.diag(factor))
    if diagonal.min() <= 1e-8 * diagonal.max():
        return None
    return factor


def _right_divided(matrix: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """``matrix R^-1`` for the upper triangular ``R = factor``: a product with the explicit
    inverse when R is well-conditioned (3x faster than the triangular solve on (N, 16)
    blocks), else the triangular solve."""
    if np.linalg.cond(factor) < 1e6:
        return _combined(matrix, la.solve_triangular(factor, np.eye(factor.shape[0])))
    return la.solve_triangular(factor, matrix.T, trans="T").T


def _combined(vectors: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """``vectors @ coefficients`` for a tall F-ordered ``vectors`` (N, m), formed as
    ``(coefficients^T vectors^T)^T``: OpenBLAS's kernel for that layout was measured 1.5-2.2x
    faster at N = 1.3e5, m = 600 and 16-250 coefficient columns (one thread)."""
    return (coefficients.T @ vectors.T).T


def _orthogonalise(block, basis: _Basis, mass) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove from ``block`` (in place) its M-projection on the basis (deflated directions
    and Krylov vectors); returns the Krylov coefficients (size, b), ``M block`` of the result
    and the M-norms of the block on entry.

    First pass against the last two blocks, whose M images are kept (``(M V_r)^T block``: no
    sparse product; the three-term recurrence carries the bulk of the projection), then
    classical Gram-Schmidt against the whole basis with ``M block`` formed once per pass
    (BLAS-3), repeated while a pass removes more than 3/4 of a column's M-norm
    (Kahan-Parlett "twice is enough", norms by Pythagoras)."""
    width, locked = block.shape[1], basis.locked
    coeffs = np.zeros((basis.size, width))
    recent, recent_mass = basis.recent()
    step = recent_mass.T @ block
    block -= _combined(recent, step)
    coeffs[basis.size - recent.shape[1] :] += step
    removed = np.einsum("ij,ij->j", step, step)
    whole = basis.whole()
    for whole_pass in range(3):
        mass_block = mass @ block
        kept = np.einsum("ij,ij->j", block, mass_block)
        if whole_pass == 0:
            entry = np.sqrt(np.maximum(kept + removed, 0.0))
        else:  # kept^2 = b^T M b - |step|^2 of the previous pass (Pythagoras)
            if np.all(kept >= 0.0625 * (kept + removed)):
                break
        step = whole.T @ mass_block
        block -= _combined(whole, step)
        coeffs += step[locked:]
        removed = np.einsum("ij,ij->j", step, step)
    else:
        mass_block = mass @ block
    return coeffs, mass_block, entry


def _projected_out(fresh: np.ndarray, basis: _Basis, mass) -> np.ndarray:
    """``fresh`` M-orthogonalised twice against the whole basis (random restarts)."""
    whole = basis.whole()
    for _ in range(2):
        fresh -= _combined(whole, whole.T @ (mass @ fresh))
    return fresh


def next_block(raw, basis: _Basis, mass, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """M-orthonormal Q with ``raw = V C + Q R`` (V the Krylov basis, deflated directions
    dropped); returns (C stacked over R, Q, M Q).  Directions already in the span are
    replaced by random ones (with zero rows of R), so the basis keeps growing."""
    block = np.array(raw, dtype=np.float64, order="F")
    coeffs, mass_block, scale = _orthogonalise(block, basis, mass)
    lost = _m_norms(block, mass_block) <= 1e-10 * np.maximum(scale, 1e-300)
    if lost.any():  # invariant subspace reached in these directions: restart them at random
        fresh = rng.standard_normal((block.shape[0], int(lost.sum())))
        block[:, lost] = _projected_out(fresh, basis, mass)
        mass_block = mass @ block
    # Cholesky-QR twice; the second Gram matrix from a true product M Q when the first R is
    # ill-conditioned (else from M block R^-1), the final M Q from the second R
    first = _cholesky_factor(block, mass_block)
    if first is not None:
        block = np.asfortranarray(_right_divided(block, first))
        if np.linalg.cond(first) < 1e3:
            mass_block = _right_divided(mass_block, first)
        else:
            mass_block = mass @ block
    second = None if first is None else _cholesky_factor(block, mass_block)
    if second is None:
        raise IncompleteSpectrumError("the Krylov block lost rank; lower the block size")
    block = np.asfortranarray(_right_divided(block, second))
    mass_block = _right_divided(mass_block, second)
    coupling = second @ first
    coupling[:, lost] = 0.0  # random restarts: no coupling to the previous block
    return np.vstack([coeffs, coupling]), block, mass_block


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
    mass_bound: float | None = None,
    workspace: list | None = None,
) -> WindowModes:
    """The ``expected`` eigenpairs with ``window[0] <= lambda < window[1]`` [1/m^2], M-orthogonal
    to ``deflation = (D, M D)``, each with relative residual ``||K x - lambda M x||_{M^-1} /
    max(lambda, 1e-3 window[1]) <= tolerance``; raises :class:`IncompleteSpectrumError` when
    the basis reaches ``max_basis`` columns first (see the module docstring).  ``workspace``:
    a one-item list holding the Krylov basis array between the windows of one solve."""
    size = stiffness.shape[0]
    rng = np.random.default_rng(seed)
    timings = {"solve": 0.0, "orthogonalisation": 0.0, "rayleigh_ritz": 0.0}
    locked = deflation[0].shape[1]
    capacity = locked + min(max_basis, 3 * expected + 4 * block_size) + block_size
    basis = _Basis.with_deflation(_workspace(workspace, size, capacity), deflation[0])
    start = rng.standard_normal((size, block_size))
    _, block, mass_block = next_block(start, basis, mass, rng)
    basis.append(block, mass_block)
    projected = np.zeros((0, 0))
    next_check, ritz_tolerance = 2 * expected, max(1e-2 * tolerance, 1e-13)
    # refined solves when the factor's round-off would set a floor under the residuals
    refine = factor.backward_error() > _REFINED_ABOVE
    while True:
        m = basis.size
        clock = time.perf_counter()
        image = factor.solve(mass_block, refine)
        solved = time.perf_counter()
        coefficients, block, mass_block = next_block(image, basis, mass, rng)
        projected = _grown(projected, coefficients, block_size)
        done = time.perf_counter()
        timings["solve"] += solved - clock
        timings["orthogonalisation"] += done - solved
        if m >= next_check or m + block_size > max_basis:
            ritz = _ritz_check(
                projected, coefficients[m:], factor.shift, window, expected, ritz_tolerance
            )
            next_check = m + max(block_size, m // 16)
            modes = None
            for stage in ("ritz", "polished", "whole"):
                modes = (
                    None
                    if ritz is None
                    else _final_pairs(
                        (stiffness, mass, mass_bound),
                        basis,
                        ritz,
                        window,
                        stage,
                        (factor, deflation, modes, tolerance),
                    )
                )
                if modes is not None and modes[0].size == expected and modes[2] <= tolerance:
                    timings["rayleigh_ritz"] += time.perf_counter() - done
                    return WindowModes(modes[0], modes[1], modes[3], m, m, timings)
            timings["rayleigh_ritz"] += time.perf_counter() - done
            if modes is not None:  # Ritz residuals small, true ones not yet: tighten and
                if ritz_tolerance <= 1e-13:  # refine the solves, up to round-off
                    raise ResidualFloorError(
                        f"relative residual {modes[2]:.1e} > tolerance {tolerance:.1e} at the "
                        "round-off floor of the shift-invert solves"
                    )
                ritz_tolerance *= 0.1
                refine = True
            if m + block_size > max_basis and ritz_tolerance < max(1e-2 * tolerance, 1e-13):
                raise ResidualFloorError(  # every counted pair was found; round-off stops it
                    f"the basis reached {m} columns while tightening the Ritz tolerance to "
                    f"{ritz_tolerance:.0e}: the residuals stay above {tolerance:.1e} at the "
                    "round-off floor of the shift-invert solves"
                )
            if m + block_size > max_basis:
                raise IncompleteSpectrumError(
                    f"found fewer than the {expected} eigenvalues that the inertia counts in "
                    f"[{window[0]:.6g}, {window[1]:.6g}) within {m} Krylov vectors; use smaller "
                    "spectrum slices (ShiftInvertLanczos(slice_modes=...))"
                )
        basis.append(block, mass_block)


def _workspace(holder: list | None, size: int, capacity: int) -> np.ndarray:
    """An (N, >= capacity) F-ordered array for the Krylov basis: the one in ``holder`` (a
    one-item list shared by the slices of a solve) when large enough, else a new one kept
    there.  Reusing it spares each slice the first touches of fresh memory."""
    if holder and holder[0].shape[0] == size and holder[0].shape[1] >= capacity:
        return holder[0]
    array = np.empty((size, capacity), order="F")
    if holder is not None:
        holder[:] = [array]
    return array


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
    """Ritz vectors (m, expected) of the converged window eigenvalues, or None if not done.
    The eigenvalues of ``T`` come first (no vectors): fewer than ``expected`` inside the
    window means not done; otherwise only the eigenvectors inside the window are formed."""
    symmetric = 0.5 * (projected + projected.T)
    with np.errstate(divide="ignore"):
        lam = shift + 1.0 / la.eigvalsh(symmetric)
    if np.count_nonzero((lam >= window[0]) & (lam < window[1])) < expected:
        return None
    pairs = [la.eigh(symmetric, subset_by_index=run) for run in _inside_runs(lam, window)]
    theta = np.concatenate([values for values, _ in pairs])
    ritz = np.hstack([vectors for _, vectors in pairs])
    m = projected.shape[0]
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


def _inside_runs(lam: np.ndarray, window) -> list[tuple[int, int]]:
    """Index ranges (first, last) of the runs of lambda inside the window, in the ascending
    order of theta = 1 / (lambda - sigma): one run when the shift is outside the window, two
    (the two ends of the spectrum of T) when it is inside."""
    inside = np.flatnonzero((lam >= window[0]) & (lam < window[1]))
    breaks = np.flatnonzero(np.diff(inside) > 1)
    firsts = np.concatenate([inside[:1], inside[breaks + 1]])
    lasts = np.concatenate([inside[breaks], inside[-1:]])
    return [(int(a), int(b)) for a, b in zip(firsts, lasts, strict=True)]


def _final_pairs(pencil, basis: _Basis, ritz, window, stage: str, previous):
    """Eigenpairs of K, M (the Galerkin approximation of the original pencil) from a
    subspace, keeping the eigenpairs inside ``window`` with the smallest residuals: ascending
    values, M-orthonormal vectors, their largest relative residual
    ``||K x - lambda M x||_{M^-1} / lambda`` and their residual norms (the numerator, kept as
    the modes' diagnostics).  The subspace of ``stage``:

    * ``"ritz"``: the converged Ritz vectors ``V y`` themselves, with their Rayleigh
      quotients (:func:`_ritz_pairs`: no Rayleigh-Ritz step with K and M; on the navis P2
      basis the Rayleigh-Ritz time of the solve went 29 -> 22 s, eigenvalues equal to
      1.5e-13 of the cutoff, the same M-orthonormality, 1.9e-12); the next two stages
      make a Rayleigh-Ritz step with K and M on a subspace:
    * ``"polished"``: the vectors ``x`` of the ``"ritz"`` stage, those whose relative
      residual is above the tolerance replaced by ``F^{-1} M x`` (``previous = (factor,
      deflation, their result, tolerance)``; skipped, None, when that stage did not find
      every pair), one step of shift-invert subspace iteration with refined solves on the
      pairs that need it (on the navis P2 basis 17 of 251 and 1 of 198: their solves were
      most of the stage's cost when every pair was iterated).
      It damps what unrefined solves left in the basis by ``|lambda - sigma| / |lambda_j -
      sigma|`` in each direction ``j`` (the lowest modes of a 4,913-node cube, middle shift,
      unrefined solves: largest residual 2.5e-7 before, 1.7e-8 after; solves that are
      refined from the start, when the factor's backward error asks for it, leave no such
      floor and this stage is then rarely reached);
    * ``"whole"``: the whole Krylov basis.

    ``pencil = (K, M, c)``, c the bound ``M >= c diag(M)`` (None: unknown) of the residual norms.
    """
    stiffness, mass, mass_bound = pencil
    size, count = ritz.shape
    if stage == "ritz":
        return _ritz_pairs(pencil, _combined(basis.view()[:, :size], ritz), window, count)
    if stage == "whole":
        vectors = basis.view()[:, :size]
    else:
        factor, deflation, found, tolerance = previous
        if found is None or found[0].size != count:
            return None
        values, vectors, _, norms = found
        failed = norms / _residual_scale(values, window) > tolerance
        if not failed.any():
            return None
        fresh = factor.solve(mass @ vectors[:, failed], refine=True)
        _deflate(fresh, deflation)
        fresh /= _m_norms(fresh, mass @ fresh)  # exact scaling: reduced M ~ identity
        vectors = np.hstack([vectors[:, ~failed], fresh])
    reduced_k = vectors.T @ (stiffness @ vectors)
    reduced_m = vectors.T @ (mass @ vectors)
    values, rotation = la.eigh(0.5 * (reduced_k + reduced_k.T), 0.5 * (reduced_m + reduced_m.T))
    inside = np.flatnonzero((values >= window[0]) & (values < window[1]))
    values, vectors = values[inside], _combined(vectors, rotation[:, inside])
    if inside.size < count:
        return values, vectors, np.inf, None
    # CG to 1e-3 leaves the M^-1 norms exact to ~1e-6 relative: ample for the tolerance test
    # (rotating K V and M V instead of the sparse products was measured slower: 8 % of the
    # navis P2 solve against 4 %)
    norms = residual_norms(stiffness, mass, values, vectors, tol=1e-3, jacobi_bound=mass_bound)
    return _best_pairs(values, vectors, norms, window, count)


def _ritz_pairs(pencil, vectors, window, count):
    """The ``"ritz"`` stage of :func:`_final_pairs`: the converged Ritz vectors ``V y`` are
    M-orthonormal already (``V`` is, the eigenvectors ``y`` of ``T`` are orthonormal), so
    no Rayleigh-Ritz step with K and M is formed: their Rayleigh quotients and residuals
    come from one product of each matrix per vector.  A vector whose quotient leaves the
    window (round-off at a boundary) or whose residual fails sends the window to the
    next stage, which does the Rayleigh-Ritz step."""
    stiffness, mass, mass_bound = pencil
    values, norms = rayleigh_residuals(stiffness, mass, vectors, tol=1e-3, jacobi_bound=mass_bound)
    order = np.argsort(values, kind="stable")
    inside = order[(values[order] >= window[0]) & (values[order] < window[1])]
    values, vectors, norms = values[inside], vectors[:, inside], norms[inside]
    if inside.size < count:
        return values, vectors, np.inf, None
    return _best_pairs(values, vectors, norms, window, count)


def _best_pairs(values, vectors, norms, window, count):
    """The ``count`` pairs with the smallest relative residuals, in ascending order, with
    the largest of those residuals."""
    residuals = norms / _residual_scale(values, window)
    best = np.sort(np.argsort(residuals, kind="stable")[:count])
    return values[best], vectors[:, best], float(residuals[best].max(initial=0.0)), norms[best]


def _residual_scale(values: np.ndarray, window) -> np.ndarray:
    """What a residual norm is relative to: lambda, or 1e-3 of the window's top for
    eigenvalues close to zero."""
    return np.maximum(np.abs(values), 1e-3 * max(abs(window[1]), abs(window[0])))
