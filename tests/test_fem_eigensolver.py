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
import scipy.sparse.linalg as sla
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


def _cube_spectrum(piece, threshold, solver):
    """Every mode of a 3-D test piece below ``threshold`` [1/m^2], the constant deflated."""
    return lowest_spectrum(
        piece.stiffness,
        piece.mass,
        threshold,
        deflation=_constant(piece),
        dimension=3,
        solver=solver,
    )


def test_slices_match_lapack_in_3d():
    piece = _cube(8)
    threshold = 60 * (np.pi / 4e-6) ** 2
    solver = ShiftInvertLanczos(dense_limit=0, slice_modes=40)
    spectrum = _cube_spectrum(piece, threshold, solver)
    assert spectrum.stats["slices"] >= 3 and spectrum.eigenvalues.size > 120
    assert spectrum.eigenvalues[0] == 0.0
    _check_against_dense(piece, spectrum)


def test_indefinite_factor_is_refined_so_the_middle_shift_needs_no_fall_back():
    """SuperLU factors K - sigma M without pivoting: with sigma in the middle of the spectrum
    its small pivots raise the backward error of a solve far above round-off (that error,
    left in the Krylov basis, kept the residuals of the lowest modes of this cube at 2.5e-7
    and forced the fall-back to a second shift); one refinement step restores round-off, and
    the slice then converges at the middle shift: one factorisation besides the count."""
    piece = _cube(16, side=10e-6)
    threshold = 48.3 * (np.pi / 10e-6) ** 2
    ordering = fill_reducing_ordering(piece.stiffness + piece.mass)
    middle = factor_near(piece.stiffness, piece.mass, 0.5 * threshold, ordering)
    below = factor_near(piece.stiffness, piece.mass, -0.02 * threshold, ordering)
    assert middle.backward_error() > 1e-13 and below.backward_error() < 1e-15
    rhs = piece.mass @ np.random.default_rng(1).standard_normal((piece.num_dofs, 2))
    matrix = (piece.stiffness - middle.shift * piece.mass).tocsr()
    norm = abs(matrix).sum(axis=1).max()
    for refine in (False, True):
        solution = middle.solve(rhs, refine=refine)
        error = np.abs(rhs - matrix @ solution).max() / (norm * np.abs(solution).max())
        assert (error < 1e-15) == refine
    spectrum = _cube_spectrum(piece, threshold, SPARSE)
    assert spectrum.stats["factorisations"] == 2 and spectrum.eigenvalues.size == 198
    # independent reference: ARPACK (shift-invert below the spectrum, positive definite)
    reference = np.sort(sla.eigsh(piece.stiffness, k=200, M=piece.mass, sigma=-0.02 * threshold)[0])
    np.testing.assert_allclose(
        spectrum.eigenvalues[1:], reference[1:198], rtol=0, atol=1e-10 * threshold
    )
    assert reference[198] > threshold


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
    # the top boundary in a real gap (the cube's degenerate pairs are equal to round-off:
    # a boundary between the two copies would not be a boundary)
    top = next(i for i in range(12, 40) if values[i + 1] - values[i] > 1e-3 * values[i])
    window = (0.5 * values[1], values[top] + 0.5 * (values[top + 1] - values[top]))
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


def test_every_mode_of_a_mid_size_permeable_mesh_is_solved_densely():
    """Asking for every mode of a 3,237-unknown permeable mesh (what the coupled error bar
    does when a doubled rate lies beyond the mesh's spectrum): the spectrum is extended
    step by step towards its top, and the switch to LAPACK is decided by the total wanted.
    Before, each step's new part stayed under a third of the unknowns, so block Lanczos
    ran into the dense top clusters and raised IncompleteSpectrumError.  The lowest rates
    agree with the Krylov solve of 20 modes (independent methods)."""
    from mf_dmri.fem import PermeableParameters, permeable_eigenbasis, permeable_mesh
    from mf_dmri.geometry import build_compartments, sphere, tetrahedralize

    surfaces = [sphere(4e-6, subdivisions=2), sphere(2e-6, subdivisions=2)]
    mesh = permeable_mesh(tetrahedralize(build_compartments(surfaces), length_scale=0.6e-6))
    assert 3000 < mesh.num_dofs <= 4000
    parameters = PermeableParameters(diffusivity=(2e-9, 0.2e-9), permeability=1e-4)
    every = permeable_eigenbasis(mesh, parameters, num_modes=mesh.num_dofs - 1)
    assert every.num_modes == mesh.num_dofs - 1
    lowest = permeable_eigenbasis(mesh, parameters, num_modes=20)
    count = lowest.num_modes
    np.testing.assert_allclose(
        every.rates[:count].numpy(), lowest.rates.numpy(), rtol=1e-9, atol=1e-9
    )


def test_polishing_iterates_only_the_pairs_above_the_tolerance():
    """The "polished" Rayleigh-Ritz stage replaces only the vectors whose residual is above
    the tolerance by one refined shift-invert step: three of 40 exact modes of a cube,
    perturbed by 1e-9 of their size (relative residuals ~1e-7, as round-off left by
    unrefined solves), come back within the tolerance; the eigenvalues equal LAPACK's and
    the 40 vectors span the exact modes' space."""
    from mf_dmri.fem.block_lanczos import _final_pairs
    from mf_dmri.fem.error_estimates import residual_norms

    piece = _cube(6)
    values, vectors = _dense(piece)
    window = (0.5 * (values[1] + values[2]), 0.5 * (values[41] + values[42]))
    exact_values, exact = values[2:42], vectors[:, 2:42]
    damaged = exact.copy()
    rng = np.random.default_rng(1)
    hit = np.array([3, 17, 31])
    scale = np.abs(exact).max()  # M-normalised modes are ~ 1 / sqrt(volume) [m^-3/2]
    damaged[:, hit] += 1e-9 * scale * rng.standard_normal((damaged.shape[0], hit.size))
    damaged[:, hit] /= np.sqrt(np.einsum("ij,ij->j", damaged[:, hit], piece.mass @ damaged[:, hit]))
    deflation = vectors[:, :2]
    norms = residual_norms(piece.stiffness, piece.mass, exact_values, damaged)
    tolerance = 1e-8
    relative = norms / np.maximum(exact_values, 1e-3 * window[1])
    assert set(np.flatnonzero(relative > tolerance)) == set(hit)
    ordering = fill_reducing_ordering(piece.stiffness + piece.mass)
    factor = factor_near(piece.stiffness, piece.mass, window[0], ordering, "superlu")
    found = (exact_values, damaged, float(relative.max()), norms)
    pencil = (piece.stiffness, piece.mass, piece.mass_jacobi_bound)
    previous = (factor, (deflation, piece.mass @ deflation), found, tolerance)
    got = _final_pairs(pencil, None, np.zeros((1, 40)), window, "polished", previous)
    assert got is not None and got[0].size == 40 and got[2] <= tolerance
    np.testing.assert_allclose(got[0], exact_values, rtol=1e-12)
    cosines = la.svdvals(exact.T @ (piece.mass @ got[1]))  # of the angles between spans
    assert np.abs(cosines - 1.0).max() < 1e-10


def test_pieces_are_solved_renumbered_and_returned_in_the_assembled_numbering():
    """solve_eigenbasis runs the block Lanczos and the moment projections in a reverse
    Cuthill-McKee numbering (far smaller bandwidth than scikit-fem's P2 numbering, whose edge
    unknowns follow all the vertex ones) and gives the vectors back in the assembled one:
    each pair satisfies K phi = lambda M phi with the assembled matrices, the moments equal
    phi^T Q phi formed directly, and an extension keeps the numbering."""
    from mf_dmri.fem.numbering import bandwidth_numbering, renumbered, restored

    grid = np.linspace(0.0, 4e-6, 5)
    system = assemble_mesh(MeshTet.init_tensor(grid, grid, grid), order=2)
    piece = system.pieces[0]
    numbering = bandwidth_numbering(piece.stiffness)

    def bandwidth(matrix):
        coo = matrix.tocoo()
        return int(np.abs(coo.row - coo.col).max())

    assert bandwidth(renumbered(piece.stiffness, numbering)) < 0.4 * bandwidth(piece.stiffness)
    block = np.random.default_rng(0).normal(size=(piece.num_dofs, 3))
    np.testing.assert_array_equal(restored(block[numbering], numbering), block)

    low = solve_eigenbasis(system, max_eigenvalue=40 / 4e-6**2, solver=SPARSE)
    result = extend_eigenbasis(system, low, max_eigenvalue=150 / 4e-6**2, solver=SPARSE)
    spectrum = result.spectra[0]
    phi, lam = spectrum.vectors, spectrum.eigenvalues
    assert lam.size > 40
    residual = piece.stiffness @ phi - (piece.mass @ phi) * lam
    assert np.abs(residual).max() < 1e-7 * lam.max() * np.abs(piece.mass @ phi).max()
    kept = result.basis.num_modes
    for k, moment in enumerate(piece.moments):
        direct = phi[:, :kept].T @ (moment @ phi[:, :kept])
        np.testing.assert_allclose(
            result.basis.moments[k].numpy(), direct, rtol=0, atol=1e-12 * np.abs(direct).max()
        )


def test_slices_of_a_thin_cell_are_balanced_by_the_measured_counts():
    """A 200 x 1 x 1 um rod, every mode below the first transverse one (its counts grow
    like lambda^(1/2), as along a neurite, not like Weyl's lambda^(3/2)): the slice
    boundaries come from the measured counts, so the four slices hold 40 +- 10 modes each
    with one count more than the three boundaries (guessed by Weyl's exponent alone, as
    before: 52, 41, 48 and 19 modes from six counts); every count is exact and every mode
    below the cutoff is found (dense LAPACK)."""
    from mf_dmri.fem.eigensolver import _plan_cuts
    from mf_dmri.fem.sparse_factor import resolve_backend

    mesh = MeshTet.init_tensor(
        np.linspace(0, 200e-6, 401), np.linspace(0, 1e-6, 3), np.linspace(0, 1e-6, 3)
    )
    piece = assemble_mesh(mesh, order=1).pieces[0]
    values, _ = _dense(piece)
    threshold = 0.5 * (values[160] + values[161])
    assert threshold < (np.pi / 1e-6) ** 2  # below the first transverse mode
    backend = resolve_backend("auto")
    top = factor_near(piece.stiffness, piece.mass, threshold, None, backend)
    cuts, stats = _plan_cuts(
        piece.stiffness, piece.mass, (None, backend), (-1.0, 1), (top.shift, 161), 40, 3
    )
    sizes = np.diff([count for _, count in cuts])
    assert len(sizes) == 4 and np.all(np.abs(sizes - 40) <= 10)
    assert stats["factorisations"] <= 4
    for shift, count in cuts[1:]:
        assert count == np.count_nonzero(values < shift)
    solver = ShiftInvertLanczos(dense_limit=0, slice_modes=40)
    spectrum = _cube_spectrum(piece, threshold, solver)
    assert spectrum.stats["slices"] == 4
    np.testing.assert_allclose(
        spectrum.eigenvalues[1:], values[1:161], rtol=0, atol=1e-10 * threshold
    )
