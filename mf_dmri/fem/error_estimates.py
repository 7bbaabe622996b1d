"""Per-mode error estimates of finite-element Neumann eigenpairs.

* Algebraic (solver) error: the relative residual
  ``||K phi - lambda M phi||_{M^-1} / lambda``, the dual norm that bounds the eigenvalue error
  of the discrete problem (``|lambda - lambda_h| <~ residual^2 * lambda`` for a well
  separated eigenvalue).  For a zero mode the residual is divided by the cutoff eigenvalue.
* Discretisation error: the a-priori indicator ``(h^2 lambda)^p`` for P``p`` elements on a
  mesh of largest edge ``h``: for smooth eigenfunctions the relative eigenvalue error is
  ``0 <= (lambda_h - lambda)/lambda <= C (h^2 lambda)^p`` (Babuska & Osborn, Handbook of
  Numerical Analysis II, 1991, Thm 10.4), with C a mesh-quality constant (about 1e-2 to 1e-1
  on the quasi-uniform meshes of the tests).  It ignores the error of approximating a
  curved boundary by flat faces (of order h^2 in the eigenvalue, whatever p).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def mass_inverse_norms(
    mass: sp.spmatrix,
    residuals: np.ndarray,
    tol: float = 1e-6,
    max_iterations: int = 500,
    chunk: int = 64,
) -> np.ndarray:
    """``sqrt(r^T M^-1 r)`` for every column r of ``residuals`` by block Jacobi-PCG on M
    (M is spectrally equivalent to its diagonal, so a few dozen iterations suffice; CG stops
    at ``tol`` relative residual, which leaves the norm exact to about ``tol^2``), ``chunk``
    columns at a time (the work arrays stay at ``5 N chunk`` numbers)."""
    out = np.zeros(residuals.shape[1])
    for start in range(0, residuals.shape[1], chunk):
        block = residuals[:, start : start + chunk]
        solution = mass_solve(mass, block, tol, max_iterations)
        out[start : start + chunk] = np.sqrt(
            np.maximum(np.einsum("ij,ij->j", block, solution), 0.0)
        )
    return out


def mass_solve(mass, rhs: np.ndarray, tol: float = 1e-6, max_iterations: int = 500) -> np.ndarray:
    """``M^-1 rhs`` (N, k) by block Jacobi-PCG, each column to ``tol`` relative residual."""
    diagonal = mass.diagonal()
    solution = np.zeros_like(rhs)
    remainder = rhs.copy()
    direction = remainder / diagonal[:, None]
    rho = np.einsum("ij,ij->j", remainder, direction)
    start = np.sqrt(np.maximum(rho, 0.0))
    for _ in range(max_iterations):
        active = np.sqrt(np.maximum(rho, 0.0)) > tol * np.maximum(start, 1e-300)
        if not active.any():
            break
        image = mass @ direction
        curvature = np.einsum("ij,ij->j", direction, image)
        step = np.where(active, rho / np.where(curvature > 0, curvature, 1.0), 0.0)
        solution += direction * step
        remainder -= image * step
        preconditioned = remainder / diagonal[:, None]
        rho_next = np.einsum("ij,ij->j", remainder, preconditioned)
        direction = preconditioned + direction * np.where(
            active, rho_next / np.where(rho > 0, rho, 1.0), 0.0
        )
        rho = rho_next
    return solution


def residual_norms(
    stiffness: sp.spmatrix,
    mass: sp.spmatrix,
    eigenvalues: np.ndarray,
    vectors: np.ndarray,
    tol: float = 1e-6,
    chunk: int = 64,
    jacobi_bound: float | None = None,
) -> np.ndarray:
    """``||K phi - lambda M phi||_{M^-1}`` per mode, ``chunk`` modes at a time (the residual
    vectors are never all held at once); ``tol`` as in :func:`mass_inverse_norms`.

    With ``jacobi_bound`` c > 0, a lower bound of the spectrum of ``diag(M)^-1 M``
    (:func:`mf_dmri.fem.assembly.reference_jacobi_bound`), the upper bound
    ``||r||_{diag(M)^-1} / sqrt(c)`` is returned instead (no solve with M):
    ``M >= c diag(M)`` gives ``M^-1 <= diag(M)^-1 / c``.
    """
    return _residuals(stiffness, mass, vectors, eigenvalues, tol, chunk, jacobi_bound)[1]


def rayleigh_residuals(
    stiffness: sp.spmatrix,
    mass: sp.spmatrix,
    vectors: np.ndarray,
    tol: float = 1e-6,
    chunk: int = 64,
    jacobi_bound: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rayleigh quotients ``phi^T K phi / phi^T M phi`` [1/m^2] of each column and the
    residual norms ``||K phi - lambda M phi||_{M^-1}`` at them, from one product of each
    matrix per column (arguments as in :func:`residual_norms`)."""
    return _residuals(stiffness, mass, vectors, None, tol, chunk, jacobi_bound)


def _residuals(stiffness, mass, vectors, eigenvalues, tol, chunk, jacobi_bound):
    """(eigenvalues, residual norms) of the columns, ``chunk`` at a time; the Rayleigh
    quotients are formed when ``eigenvalues`` is None."""
    quotients = eigenvalues is None
    values = np.zeros(vectors.shape[1]) if quotients else np.asarray(eigenvalues)
    norms = np.zeros(vectors.shape[1])
    for start in range(0, vectors.shape[1], chunk):
        # one row-major copy for both sparse products and the column sums below (a column
        # slice of an F-ordered array is copied in each sparse product otherwise, and the
        # mixed-layout sums are slow)
        block = np.ascontiguousarray(vectors[:, start : start + chunk])
        stiff_block, mass_block = stiffness @ block, mass @ block
        if quotients:
            values[start : start + chunk] = np.einsum("ij,ij->j", block, stiff_block) / np.einsum(
                "ij,ij->j", block, mass_block
            )
        residual = stiff_block - mass_block * values[start : start + chunk]
        norms[start : start + chunk] = _dual_norms(mass, residual, tol, jacobi_bound)
    return values, norms


def _dual_norms(mass, residual: np.ndarray, tol: float, jacobi_bound: float | None):
    """``||r||_{M^-1}`` per column: Jacobi-PCG, or the bound ``||r||_{diag(M)^-1} / sqrt(c)``."""
    if jacobi_bound is None:
        return mass_inverse_norms(mass, residual, tol=tol, chunk=residual.shape[1])
    scaled = np.einsum("ij,ij->j", residual, residual / mass.diagonal()[:, None])
    return np.sqrt(scaled / jacobi_bound)


def apriori_relative_errors(eigenvalues: np.ndarray, mesh_size: float, order: int) -> np.ndarray:
    """The a-priori indicator ``(h^2 lambda)^p`` of the relative eigenvalue error (C = 1)."""
    return (mesh_size**2 * np.asarray(eigenvalues, dtype=np.float64)) ** order
