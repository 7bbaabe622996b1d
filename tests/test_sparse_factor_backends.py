"""The factorisation backends of the eigensolver (mf_dmri.fem.sparse_factor): PARDISO (the
optional ``pardiso`` extra) against SuperLU on the same matrices: the same inertia count at
every shift, solves to round-off (independent check: the residual of the solved system), the
same spectrum to 1e-10 relative, and clear errors for a singular shift, a missing extra and an
unknown backend name.  Independent reference of the counts: LAPACK ``eigh`` on the dense
matrices."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as la
from skfem import MeshTet

from mf_dmri.fem import ShiftInvertLanczos, assemble_mesh, sparse_factor
from mf_dmri.fem.eigensolver import lowest_spectrum
from mf_dmri.fem.sparse_factor import ShiftedFactor, fill_reducing_ordering, resolve_backend

needs_pardiso = pytest.mark.skipif(
    not sparse_factor.pardiso_available(),
    reason="pypardiso / MKL not installed (pip install 'mf_dmri[pardiso]')",
)


def _cube(cells: int, side: float = 4e-6):
    grid = np.linspace(0.0, side, cells + 1)
    return assemble_mesh(MeshTet.init_tensor(grid, grid, grid), order=1).pieces[0]


@needs_pardiso
def test_pardiso_inertia_and_solves_match_superlu_and_lapack():
    piece = _cube(8)
    values = la.eigh(piece.stiffness.toarray(), piece.mass.toarray(), eigvals_only=True)
    ordering = fill_reducing_ordering(piece.stiffness + piece.mass)
    rhs = np.random.default_rng(3).standard_normal((piece.num_dofs, 5))
    gaps = np.flatnonzero(np.diff(values) > 1e-3 * values[1:])  # between clusters
    # shifts below the spectrum, then between clusters: low, middle and high
    for index in (-1, *gaps[[3, gaps.size // 4, gaps.size // 2]]):
        shift = -0.5 * values[1] if index < 0 else 0.5 * (values[index] + values[index + 1])
        pardiso = ShiftedFactor(piece.stiffness, piece.mass, shift, None, "pardiso")
        superlu = ShiftedFactor(piece.stiffness, piece.mass, shift, ordering, "superlu")
        assert pardiso.negative_count() == superlu.negative_count() == index + 1
        matrix = (piece.stiffness - shift * piece.mass).tocsr()
        norm = abs(matrix).sum(axis=1).max()
        single = pardiso.solve(rhs[:, 0])
        assert single.shape == (piece.num_dofs,)
        assert pardiso.solve(rhs[:, :0]).shape == (piece.num_dofs, 0)
        for solution, target in ((pardiso.solve(rhs, refine=True), rhs), (single, rhs[:, 0])):
            error = np.abs(target - matrix @ solution).max() / (norm * np.abs(solution).max())
            assert error < 1e-13
        if index < 0:  # positive definite, well conditioned: the same solution
            ours, theirs = pardiso.solve(rhs), superlu.solve(rhs)
            assert np.abs(ours - theirs).max() < 1e-12 * np.abs(theirs).max()


@needs_pardiso
def test_pardiso_spectrum_equals_the_superlu_spectrum():
    piece = _cube(10, side=10e-6)
    threshold = 30 * (np.pi / 10e-6) ** 2
    constant = np.full((piece.num_dofs, 1), 1.0 / np.sqrt(piece.volume))
    spectra = {
        backend: lowest_spectrum(
            piece.stiffness,
            piece.mass,
            threshold,
            deflation=constant,
            dimension=3,
            solver=ShiftInvertLanczos(dense_limit=0, slice_modes=40, factorisation=backend),
        )
        for backend in ("pardiso", "superlu")
    }
    pardiso, superlu = spectra["pardiso"], spectra["superlu"]
    assert pardiso.stats["slices"] >= 2 and pardiso.factor.backend == "pardiso"
    assert pardiso.ordering is None and superlu.ordering is not None
    assert pardiso.eigenvalues.size == superlu.eigenvalues.size > 80
    np.testing.assert_allclose(
        pardiso.eigenvalues, superlu.eigenvalues, rtol=0, atol=1e-10 * threshold
    )


@needs_pardiso
def test_pardiso_refuses_a_singular_shift():
    piece = _cube(5)
    # K is singular (the constant): a zero pivot, which PARDISO perturbs: the count would
    # not be exact, so the factor is refused with the reason, and so are the nudged shifts
    # (at most 3e-8 [1/m^2] away from 0: as singular to working precision)
    with pytest.raises(ArithmeticError, match="perturbed pivots"):
        ShiftedFactor(piece.stiffness, piece.mass, 0.0, None, "pardiso")
    with pytest.raises(ArithmeticError, match="could not factor K - 0 M with pardiso"):
        sparse_factor.factor_near(piece.stiffness, piece.mass, 0.0, None, "pardiso")


def test_backend_choice_and_its_errors(monkeypatch):
    assert resolve_backend("superlu") == "superlu"
    with pytest.raises(ValueError, match="factorisation must be one of"):
        ShiftInvertLanczos(factorisation="mumps")
    with pytest.raises(ValueError, match="backend must be"):
        piece = _cube(3)
        ShiftedFactor(piece.stiffness, piece.mass, 1.0, None, "mumps")
    monkeypatch.setattr(sparse_factor, "pardiso_available", lambda: False)
    assert resolve_backend("auto") == "superlu"
    with pytest.raises(ImportError, match=r"pip install 'mf_dmri\[pardiso\]'"):
        resolve_backend("pardiso")
    piece = _cube(6)
    constant = np.full((piece.num_dofs, 1), 1.0 / np.sqrt(piece.volume))
    with pytest.raises(ImportError, match="pardiso"):
        lowest_spectrum(
            piece.stiffness,
            piece.mass,
            10 * (np.pi / 4e-6) ** 2,
            deflation=constant,
            dimension=3,
            solver=ShiftInvertLanczos(dense_limit=0, factorisation="pardiso"),
        )
