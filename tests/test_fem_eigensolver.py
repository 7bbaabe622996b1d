"""The eigensolver (mf_dmri.fem.eigensolver): spectrum slices against dense LAPACK, degenerate
clusters at slice boundaries, the inertia count catching a missing mode, one zero mode per
disconnected piece, and extending a solved system to a higher cutoff.

Independent reference: LAPACK ``scipy.linalg.eigh`` on the dense matrices of the same mesh.
(Convergence to the analytic disk/ball/square eigenvalues under refinement, with fitted
rates, is tests/test_fem_convergence.py, which runs through the same solver.)
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as la
import scipy.sparse as sp
from skfem import MeshTet, MeshTri

from mf_dmri.fem import (
    IncompleteSpectrumError,
    ShiftInvertLanczos,
    assemble_mesh,
    extend_eigenbasis,
    solve_eigenbasis,
)
from mf_dmri.fem.block_lanczos import window_eigenpairs
from mf_dmri.fem.eigensolver import extend_spectrum, lowest_spectrum
from mf_dmri.fem.mode_set import lowest_modes
from mf_dmri.fem.sparse_factor import factor_near, fill_reducing_ordering

SPARSE = ShiftInvertLanczos(dense_limit=0)


def _cube(cells: int, side: float = 4e-6):
    grid = np.linspace(0.0, side, cells + 1)
    return assemble_mesh(MeshTet.init_tensor(grid, grid, grid), order=1).pieces[0]


def _constant(piece) -> np.ndarray:
    return np.full((piece.num_dofs, 1), 1.0 / np.sqrt(piece.volume))


def _dense(piece):
    return la.eigh(piece.stiffness.toarray(), piece.mass.toarray())


def _check_against_dense(piece, spectrum, rtol=1e-10):
    values, _ = _dense(piece)
    reference = values[values < spectrum.upper]
    assert spectrum.eigenvalues.size == reference.size
    np.testing.assert_allclose(
        spectrum.eigenvalues[1:], reference[1:], rtol=0, atol=rtol * spectrum.upper
    )
    gram = spectrum.vectors.T @ (piece.mass @ spectrum.vectors)
    assert np.abs(gram - np.eye(gram.shape[0])).max() < 1e-9


def test_slices_match_lapack_in_3d():
    piece = _cube(8)
    threshold = 60 * (np.pi / 4e-6) ** 2
    solver = ShiftInvertLanczos(dense_limit=0, slice_modes=40)
    spectrum = lowest_spectrum(
        piece.stiffness,
        piece.mass,
        threshold,
        deflation=_constant(piece),
        dimension=3,
        solver=solver,
    )
    assert spectrum.stats["slices"] >= 3 and spectrum.eigenvalues.size > 120
    assert spectrum.eigenvalues[0] == 0.0
    _check_against_dense(piece, spectrum)


def test_degenerate_cluster_cut_by_a_slice_boundary_stays_whole():
    """MeshTri.init_circle is 4-fold symmetric, so its m = 1, 3, ... pairs are degenerate to
    round-off; a first solve stops exactly at such a pair and is then extended past it: the
    pair's eigenspace must come out whole (same projector as LAPACK) and M-orthonormal."""
    piece = assemble_mesh(*_disk_arrays(4), order=1).pieces[0]
    values, vectors = _dense(piece)
    gaps = np.diff(values) / np.maximum(values[1:], 1e-300)
    pair = next(i for i in range(10, 60) if gaps[i] < 1e-9 and gaps[i - 1] > 1e-4)
    first = lowest_spectrum(
        piece.stiffness,
        piece.mass,
        values[pair],
        deflation=_constant(piece),
        dimension=2,
        solver=SPARSE,
    )
    extended = extend_spectrum(
        piece.stiffness, piece.mass, first, 1.3 * values[pair + 1], dimension=2, solver=SPARSE
    )
    _check_against_dense(piece, extended)
    block = extended.vectors[:, pair : pair + 2]
    exact = vectors[:, pair : pair + 2]
    mass = piece.mass
    np.testing.assert_allclose(block @ (block.T @ mass), exact @ (exact.T @ mass), atol=1e-7)


def test_inertia_count_catches_a_missing_mode():
    """Hide one true eigenvector from the Krylov space (deflate it) while the count still
    includes it: the window must refuse instead of returning one mode short."""
    piece = _cube(6)
    values, vectors = _dense(piece)
    window = (0.5 * values[1], values[12] + 0.5 * (values[13] - values[12]))
    expected = int(((values >= window[0]) & (values < window[1])).sum())
    hidden = np.hstack([vectors[:, :1], vectors[:, 5:6]])
    ordering = fill_reducing_ordering(piece.stiffness + piece.mass)
    factor = factor_near(piece.stiffness, piece.mass, 0.5 * sum(window), ordering)
    with pytest.raises(IncompleteSpectrumError, match="inertia counts"):
        window_eigenpairs(
            piece.stiffness,
            piece.mass,
            factor,
            window,
            expected,
            (hidden, piece.mass @ hidden),
            block_size=4,
            tolerance=1e-8,
            max_basis=200,
        )


def test_disconnected_pieces_get_one_exact_zero_mode_each():
    mesh = MeshTri.init_circle(3)
    nodes = mesh.p.T * 5e-6
    both = np.concatenate([nodes, nodes + [20e-6, 0.0]])
    elements = np.concatenate([mesh.t.T, mesh.t.T + len(nodes)])
    piece = assemble_mesh(both, elements, element_labels=np.zeros(2 * len(mesh.t.T), int), order=1)
    stiffness = sp.block_diag([p.stiffness for p in piece.pieces]).tocsr()
    mass = sp.block_diag([p.mass for p in piece.pieces]).tocsr()
    modes = lowest_modes(
        stiffness,
        mass,
        num_modes=12,
        max_eigenvalue=None,
        cluster_rtol=1e-6,
        dim=2,
        solver=SPARSE,
    )
    assert modes.num_zero == 2 and np.all(modes.eigenvalues[:2] == 0.0)
    reference = la.eigh(stiffness.toarray(), mass.toarray(), eigvals_only=True)
    size = modes.eigenvalues.size
    np.testing.assert_allclose(modes.eigenvalues[2:], reference[2:size], rtol=1e-9, atol=0)
    assert modes.factor is not None


def test_extended_eigenbasis_equals_a_fresh_solve():
    system = assemble_mesh(*_disk_arrays(4), order=1)
    low, high = 40 / 5e-6**2, 120 / 5e-6**2
    first = solve_eigenbasis(system, max_eigenvalue=low, solver=SPARSE)
    grown = extend_eigenbasis(system, first, max_eigenvalue=high, solver=SPARSE)
    fresh = solve_eigenbasis(system, max_eigenvalue=high, solver=SPARSE)
    assert grown.basis.num_modes == fresh.basis.num_modes > first.basis.num_modes
    np.testing.assert_allclose(
        grown.basis.eigenvalues.numpy(), fresh.basis.eigenvalues.numpy(), rtol=1e-10, atol=0
    )
    assert grown.residuals.max() < 1e-8
    with pytest.raises(ValueError, match="this system"):
        extend_eigenbasis(assemble_mesh(*_disk_arrays(3), order=1), first, max_eigenvalue=high)


def _disk_arrays(refinements: int):
    mesh = MeshTri.init_circle(refinements)
    return mesh.p.T * 5e-6, mesh.t.T
