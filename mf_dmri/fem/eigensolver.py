"""The eigensolver of the project: every eigenpair of ``K phi = lambda M phi`` below a threshold.

``K`` symmetric positive semi-definite with known exact null vectors (``deflation``: the
constant on each connected piece), ``M`` symmetric positive definite.  One path for every
caller (mesh eigenbases, the differentiable eigen-solve, permeable operators):

1. **Count.** One sparse ``L D L^T`` of ``K - T M`` gives, by Sylvester's law of inertia, the
   exact number of eigenvalues below the threshold ``T`` (:mod:`mf_dmri.fem.sparse_factor`).
2. **Slice.** More modes than ``slice_modes`` are split into spectrum slices ``[t_i, t_{i+1})``
   of about equal size whose boundaries are guessed from the counts measured so far (a power
   law ``n(lambda) ~ lambda^p`` through the two nearest; Weyl's ``p = d/2`` before the second
   count) and are counted the same way, so each slice knows exactly how many eigenvalues
   it holds.  ``slice_modes`` balances
   the factorisations (two per slice) against the orthogonalisation (``~N m^2`` for a Krylov
   basis of ``m ~ 2.5 x`` the slice's modes), from the measured time of the first count.
3. **Solve.** Each slice runs shift-invert block Lanczos (:mod:`mf_dmri.fem.block_lanczos`)
   with its shift in the middle of the slice until it has found exactly the counted
   eigenpairs: no mode is missing, or :class:`IncompleteSpectrumError` is raised.  If the
   round-off of the indefinite solves keeps some residual above the tolerance, the slice is
   solved again with its shift at its bottom (positive definite factor for the lowest slice).
   The modes of the upper part of the previous slice are deflated (kept M-orthogonal), so a
   degenerate cluster that straddles a boundary is split between two slices without losing
   or duplicating a direction.
4. **Small problems** (at most ``dense_limit`` unknowns, or up to 4,000 unknowns when a third
   of the spectrum is wanted) go to LAPACK ``eigh``: complete by construction and cheaper
   than a Krylov basis nearly as large as the matrix.

The exact null vectors come first with eigenvalue exactly 0.  A :class:`Spectrum` can be
extended to a higher threshold (:func:`extend_spectrum`) reusing its modes, the count at its
old threshold and the fill-reducing ordering; its ``factor`` (the top slice's factorisation)
preconditions the adjoint solves of the differentiable path
(:func:`mf_dmri.fem.mode_set.projected_shifted_solve`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.linalg as la

from mf_dmri.fem.block_lanczos import (
    IncompleteSpectrumError,
    ResidualFloorError,
    window_eigenpairs,
)
from mf_dmri.fem.error_estimates import residual_norms
from mf_dmri.fem.sparse_factor import (
    BACKENDS,
    ShiftedFactor,
    factor_near,
    fill_reducing_ordering,
    resolve_backend,
)

__all__ = ["IncompleteSpectrumError", "ShiftInvertLanczos", "Spectrum", "lowest_spectrum"]

#: Sustained dense matrix-product rate [flop/s] assumed when choosing slice sizes.
_FLOP_RATE = 8e9


@dataclass(frozen=True)
class ShiftInvertLanczos:
    """Settings of the eigensolver (the algorithm object passed as ``solver=``).

    Args:
        block_size: Krylov block width b (columns solved at once).
        tolerance: largest relative residual ``||K x - lambda M x||_{M^-1} / lambda`` of a
            returned mode (checked a posteriori).
        slice_modes: modes per spectrum slice; None chooses it from the measured cost.
        dense_limit: problems with at most this many unknowns use dense LAPACK.
        factorisation: sparse factorisation backend, one of "auto" (PARDISO when the
            ``pardiso`` extra is installed, else SuperLU), "pardiso", "superlu"
            (:mod:`mf_dmri.fem.sparse_factor`).
    """

    block_size: int = 16
    tolerance: float = 1e-8
    slice_modes: int | None = None
    dense_limit: int = 400
    factorisation: str = "auto"

    def __post_init__(self) -> None:
        if not 1 <= self.block_size <= 256:
            raise ValueError(f"block_size must be in [1, 256], got {self.block_size}")
        if not 1e-11 <= self.tolerance <= 1e-4:
            raise ValueError(f"tolerance must be in [1e-11, 1e-4], got {self.tolerance}")
        if self.slice_modes is not None and self.slice_modes < 8:
            raise ValueError(f"slice_modes must be >= 8 (or None), got {self.slice_modes}")
        if self.dense_limit < 0:
            raise ValueError(f"dense_limit must be >= 0, got {self.dense_limit}")
        if self.factorisation not in BACKENDS:
            raise ValueError(f"factorisation must be one of {BACKENDS}, got {self.factorisation!r}")


@dataclass(frozen=True)
class Spectrum:
    """Every eigenpair below ``upper`` [1/m^2], proven complete (inertia or dense LAPACK).

    Args:
        eigenvalues: (n,) ascending [1/m^2]; the first ``num_zero`` are exactly 0.
        vectors: (N, n) M-orthonormal eigenvectors.
        residual_norms: (n,) ``||K x - lambda M x||_{M^-1}`` [1/m^2] of each pair, as
            computed when it was accepted (the diagnostics of the result).
        upper: the counted threshold: exactly n eigenvalues lie below it.
        num_zero: number of exact null vectors (first columns).
        method: "dense" or "block-lanczos".
        factor: the top slice's factorisation (None for dense), kept for adjoint solves.
        ordering: the fill-reducing ordering (None for dense and for the "pardiso"
            backend, which orders by itself), reused by extensions.
        stats: counts (factorisations, solves, slices) and wall times [s] per step.
        mass_bound: c with ``M >= c diag(M)`` (known for finite-element mass matrices:
            ``FemMatrices.mass_jacobi_bound``): the residual norms of the Krylov windows are
            then the cheap upper bounds ``||r||_{diag(M)^-1} / sqrt(c)``; None: Jacobi-PCG.
    """

    eigenvalues: np.ndarray
    vectors: np.ndarray
    residual_norms: np.ndarray
    upper: float
    num_zero: int
    method: str
    factor: ShiftedFactor | None = field(default=None, compare=False, repr=False)
    ordering: np.ndarray | None = field(default=None, compare=False, repr=False)
    stats: dict = field(default_factory=dict, compare=False)
    mass_bound: float | None = None


def lowest_spectrum(
    stiffness,
    mass,
    threshold: float,
    *,
    deflation: np.ndarray,
    dimension: int,
    solver=None,
    mass_bound: float | None = None,
) -> Spectrum:
    """All eigenpairs below ``threshold`` [1/m^2] of ``K phi = lambda M phi``.

    Args:
        stiffness, mass: (N, N) sparse symmetric K (PSD) and M (PD).
        threshold: T [1/m^2] > 0 (``math.inf`` for every mode, dense problems only).
        deflation: (N, z) M-orthonormal exact null vectors of K (one per connected piece).
        dimension: spatial dimension d (Weyl's law for slice boundaries).
        solver: a :class:`ShiftInvertLanczos` (default settings when None).
        mass_bound: c > 0 with ``M >= c diag(M)`` when known (see :class:`Spectrum`).
    """
    solver = ShiftInvertLanczos() if solver is None else solver
    _check_solver(solver)
    dense = stiffness.shape[0] <= solver.dense_limit
    if not (threshold > 0 and (math.isfinite(threshold) or dense)):
        raise ValueError(f"threshold must be a positive eigenvalue [1/m^2], got {threshold}")
    null_vectors = np.asarray(deflation, dtype=np.float64)
    zero = Spectrum(
        eigenvalues=np.zeros(null_vectors.shape[1]),
        vectors=null_vectors,
        residual_norms=residual_norms(
            stiffness, mass, np.zeros(null_vectors.shape[1]), null_vectors
        ),
        upper=-1e-6 * threshold,
        num_zero=deflation.shape[1],
        method="dense" if dense else "block-lanczos",
        mass_bound=mass_bound,
    )
    return extend_spectrum(stiffness, mass, zero, threshold, dimension=dimension, solver=solver)


def extend_spectrum(
    stiffness, mass, spectrum: Spectrum, threshold: float, *, dimension: int, solver=None
) -> Spectrum:
    """``spectrum`` completed up to ``threshold`` [1/m^2] (>= its ``upper``), reusing its
    modes, its count and its ordering: only the new slices are factorised and solved."""
    solver = ShiftInvertLanczos() if solver is None else solver
    _check_solver(solver)
    if threshold <= spectrum.upper:
        return spectrum
    if spectrum.method == "dense":
        return _dense_spectrum(stiffness, mass, threshold, spectrum)
    backend = resolve_backend(solver.factorisation)
    clock = time.perf_counter()
    ordering = spectrum.ordering
    if ordering is None and backend == "superlu":
        ordering = fill_reducing_ordering(stiffness + mass)
    stats = _merged_stats(spectrum.stats, {"ordering": time.perf_counter() - clock})
    clock = time.perf_counter()
    top = factor_near(stiffness, mass, threshold, ordering, backend)
    total = top.negative_count()
    seconds = time.perf_counter() - clock
    stats = _merged_stats(stats, {"factorisations": 1, "count": seconds})
    new = total - spectrum.eigenvalues.size
    if new < 0:
        raise IncompleteSpectrumError("the inertia count decreased; K is not symmetric")
    if 3 * total > stiffness.shape[0] - spectrum.num_zero and stiffness.shape[0] <= 4000:
        # every mode, so that the buffer of an adjoint solve is the whole complement; by
        # the total wanted, not the new part: extending a spectrum step by step towards
        # the top of a mesh's spectrum, where shift-invert Lanczos stalls on its dense
        # clusters, would otherwise never switch (IncompleteSpectrumError at 3,237 dof)
        return _dense_spectrum(stiffness, mass, math.inf, replace(spectrum, stats=stats))
    slice_modes = solver.slice_modes or _slice_modes(stiffness.shape[0], seconds)
    slice_modes = min(slice_modes, max(8, stiffness.shape[0] // 4))  # Krylov basis fits
    lower = (spectrum.upper, spectrum.eigenvalues.size)
    cuts, cut_stats = _plan_cuts(
        stiffness, mass, (ordering, backend), lower, (top.shift, total), slice_modes, dimension
    )
    stats = _merged_stats(stats, cut_stats)
    del top
    # one buffer for every mode below the threshold: each slice writes its columns (no
    # copy of the modes found so far per slice); the spectra hold views of it
    buffer = np.empty((stiffness.shape[0], total), order="F")
    buffer[:, : spectrum.eigenvalues.size] = spectrum.vectors
    workspace: list = []  # the Krylov basis array, reused by the slices
    spectrum = replace(spectrum, ordering=ordering, vectors=buffer[:, : spectrum.eigenvalues.size])
    for (start, count_start), (stop, count_stop) in zip(cuts[:-1], cuts[1:], strict=True):
        spectrum = _solve_slice(
            stiffness,
            mass,
            spectrum,
            (start, stop),
            count_stop - count_start,
            (solver, backend, buffer, workspace),
            stats,
        )
        stats = spectrum.stats
    return replace(spectrum, upper=cuts[-1][0], ordering=ordering)


def _check_solver(solver) -> None:
    if not isinstance(solver, ShiftInvertLanczos):
        raise TypeError(
            f"solver must be a ShiftInvertLanczos(...) settings object, got {solver!r}; "
            "use mf_dmri.fem.ShiftInvertLanczos() (the default) or leave solver=None"
        )


def _merged_stats(stats: dict, extra: dict) -> dict:
    out = dict(stats)
    for key, value in extra.items():
        out[key] = out.get(key, 0) + value
    return out


def _slice_modes(size: int, factor_seconds: float) -> int:
    """Modes per slice minimising 2 factorisations per slice + N (2.5 c)^2 orthogonalisation."""
    orthogonalisation_per_mode = 25.0 * size / _FLOP_RATE  # [s] per mode per slice mode
    best = math.sqrt(2.0 * factor_seconds / max(orthogonalisation_per_mode, 1e-30))
    memory_cap = 2**31 / (48.0 * size)  # Krylov basis and its M-image below ~2 GiB
    return int(min(max(best, 200.0), max(memory_cap, 200.0), 600.0))


def _plan_cuts(stiffness, mass, factorisation, lower, upper, slice_modes, dimension):
    """Slice boundaries [(t, exact count below t)] from ``lower`` to ``upper``, splitting the
    modes between them into slices of about equal size near ``slice_modes``; ``factorisation``
    is (ordering, backend).

    Each boundary is guessed where the counts measured so far put its target count, by a
    power law ``n(lambda) ~ lambda^p`` through the two nearest measured points (Weyl's law
    ``p = d / 2`` while only one is known), then counted; a count outside [0.5, 1.6] slices
    joins the measured points and the guess is made again (at most four counts per
    boundary).  Weyl's exponent alone is far off on thin cells: on a navis neuron's P2
    basis the counts grow like ``lambda^0.6``, not ``lambda^1.5``, and the guesses from it
    took seven counts for four boundaries and left a last slice of 84 modes."""
    stats = {"factorisations": 0, "count": 0.0}
    cuts, measured = [lower], [upper]
    if lower[0] > 0:
        measured.append(lower)
    slices = max(1, round((upper[1] - lower[1]) / slice_modes))
    size = (upper[1] - lower[1]) / slices
    while upper[1] - cuts[-1][1] > 1.5 * size:
        start, count_start = cuts[-1]
        target = count_start + size
        low, high = max(start, 0.0), upper[0]
        for _ in range(4):
            guess = _counted_guess(measured, target, dimension / 2.0, (low, high))
            clock = time.perf_counter()
            factor = factor_near(stiffness, mass, guess, *factorisation)
            count = factor.negative_count()
            stats["factorisations"] += 1
            stats["count"] += time.perf_counter() - clock
            measured.append((factor.shift, count))
            step = count - count_start
            if 0.5 * size <= step <= 1.6 * size:
                break
            low, high = (factor.shift, high) if step < 0.5 * size else (low, factor.shift)
        if count <= count_start or count >= upper[1]:
            break
        cuts.append((factor.shift, count))
    cuts.append(upper)
    return cuts, stats


def _counted_guess(measured, target: float, weyl_power: float, bracket) -> float:
    """The eigenvalue [1/m^2] at which the power law through the two measured (lambda,
    count) points nearest ``target`` (in count) reaches ``target``, kept strictly inside
    ``bracket`` (the midpoint when it falls outside); one point: the power ``weyl_power``."""
    points = sorted(
        (p for p in measured if p[0] > 0 and p[1] > 0), key=lambda p: abs(math.log(p[1] / target))
    )[:2]
    (value, count), power = points[0], weyl_power
    if len(points) == 2 and points[1][1] != count and points[1][0] != value:
        power = math.log(points[1][1] / count) / math.log(points[1][0] / value)
    guess = value * (target / count) ** (1.0 / power) if power > 0 else math.nan
    low, high = bracket
    if not (low < guess < high):
        guess = 0.5 * (low + high)
    return guess


def _solve_slice(stiffness, mass, spectrum, window, expected, settings, stats) -> Spectrum:
    """Append the ``expected`` eigenpairs in ``window`` to ``spectrum``; ``settings`` is
    (solver, backend, buffer, workspace), ``buffer`` (N, total) holding
    ``spectrum.vectors`` in its first columns, ``workspace`` the Krylov basis holder."""
    solver, backend, buffer, workspace = settings
    if expected == 0:
        return replace(spectrum, stats=stats)
    start, stop = window
    deflation = _deflation(spectrum, start, stop)
    room = stiffness.shape[0] - deflation.shape[1]
    extra: dict = {"slices": 1}
    # shift in the middle of the slice; if the solves' round-off keeps the residuals of the
    # modes far from it above the tolerance, once more with the shift at the slice's bottom
    for fraction in (0.5, -0.02):
        clock = time.perf_counter()
        shift = start + fraction * (stop - start)
        factor = factor_near(stiffness, mass, shift, spectrum.ordering, backend)
        extra = _merged_stats(
            extra, {"factorisations": 1, "factorisation": time.perf_counter() - clock}
        )
        try:
            modes = window_eigenpairs(
                stiffness,
                mass,
                factor,
                window,
                expected,
                (deflation, mass @ deflation),
                block_size=min(solver.block_size, max(1, room // 4)),
                tolerance=solver.tolerance,
                max_basis=min(room - solver.block_size, 8 * expected + 10 * solver.block_size),
                seed=spectrum.eigenvalues.size,
                mass_bound=spectrum.mass_bound,
                workspace=workspace,
            )
            break
        except ResidualFloorError:
            if fraction < 0:
                raise
    extra = _merged_stats(extra, {"solves": modes.solves, **modes.timings})
    return replace(
        spectrum,
        eigenvalues=np.concatenate([spectrum.eigenvalues, modes.eigenvalues]),
        vectors=_appended(buffer, spectrum.eigenvalues.size, modes.vectors),
        residual_norms=np.concatenate([spectrum.residual_norms, modes.residual_norms]),
        upper=stop,
        factor=factor,
        stats=_merged_stats(stats, extra),
    )


def _appended(buffer: np.ndarray, size: int, vectors: np.ndarray) -> np.ndarray:
    """``buffer``'s first ``size`` columns followed by ``vectors`` (written in place)."""
    end = size + vectors.shape[1]
    if end > buffer.shape[1]:
        raise IncompleteSpectrumError(
            f"the slices found {end} modes where the inertia counts {buffer.shape[1]}"
        )
    buffer[:, size:end] = vectors
    return buffer[:, :end]


def _deflation(spectrum: Spectrum, start: float, stop: float) -> np.ndarray:
    """Exact null vectors and the previous slice's modes in its upper part (within 30 % of
    this slice's width below ``start``), which this slice must stay M-orthogonal to."""
    values = spectrum.eigenvalues
    near = values >= start - 0.3 * (stop - start)
    near[: spectrum.num_zero] = True
    return spectrum.vectors[:, near]


def _dense_spectrum(stiffness, mass, threshold: float, spectrum: Spectrum) -> Spectrum:
    """LAPACK on the dense matrices; the null vectors are replaced by the exact ones."""
    clock = time.perf_counter()
    values, vectors = la.eigh(stiffness.toarray(), mass.toarray(), driver="gvd")
    zeros = spectrum.num_zero
    exact = spectrum.vectors[:, :zeros]
    keep = np.flatnonzero(values < threshold)
    keep = keep[keep >= zeros]
    modes = vectors[:, keep]
    modes -= exact @ (exact.T @ (mass @ modes))
    norms = residual_norms(stiffness, mass, values[keep], modes)
    return replace(
        spectrum,
        eigenvalues=np.concatenate([np.zeros(zeros), values[keep]]),
        vectors=np.hstack([exact, modes]),
        residual_norms=np.concatenate([spectrum.residual_norms[:zeros], norms]),
        upper=threshold,
        method="dense",
        factor=None,
        stats=_merged_stats(spectrum.stats, {"dense": time.perf_counter() - clock}),
    )
