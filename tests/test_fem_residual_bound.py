"""The cheap residual bound of the eigensolver: ``M >= c diag(M)`` for Lagrange mass
matrices, so ``||r||_{M^-1} <= ||r||_{diag(M)^-1} / sqrt(c)``.

References: the P1 closed form (element mass ``|K| (I + 1 1^T) / ((d+1)(d+2))``, so
``diag^-1 M_K = (I + 1 1^T) / 2`` with smallest eigenvalue 1/2), and the M^-1 norm by
Jacobi-PCG to 1e-10 on meshes with badly shaped elements."""

import numpy as np
import pytest
from skfem.element import ElementTetP1, ElementTetP2, ElementTriP1, ElementTriP2

from mf_dmri.fem.assembly import reference_jacobi_bound
from mf_dmri.fem.error_estimates import residual_norms
from mf_dmri.fem.system import assemble_mesh


@pytest.mark.parametrize("element", [ElementTriP1(), ElementTetP1()])
def test_p1_bound_is_one_half(element):
    assert reference_jacobi_bound(element) == pytest.approx(0.5, rel=1e-12)


def test_p2_bounds_are_positive_and_below_p1():
    for element in (ElementTriP2(), ElementTetP2()):
        assert 0.1 < reference_jacobi_bound(element) < 0.5


def _distorted_box(dimension: int, seed: int):
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(seed)
    points = rng.uniform(size=(60 if dimension == 2 else 120, dimension)) * 1e-5
    corners = np.array(np.meshgrid(*[[0.0, 1e-5]] * dimension)).reshape(dimension, -1).T
    points = np.vstack([corners, points])
    return points, Delaunay(points).simplices  # random points: slivers and needles


@pytest.mark.parametrize("dimension", [2, 3])
@pytest.mark.parametrize("order", [1, 2])
def test_bound_holds_on_badly_shaped_meshes(dimension, order):
    nodes, elements = _distorted_box(dimension, seed=dimension + 10 * order)
    piece = assemble_mesh(nodes, elements, order=order).pieces[0]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(piece.num_dofs, 12))
    values = rng.uniform(0, 1e11, size=12)
    exact = residual_norms(piece.stiffness, piece.mass, values, vectors, tol=1e-10)
    c = piece.mass_jacobi_bound
    bound = residual_norms(piece.stiffness, piece.mass, values, vectors, jacobi_bound=c)
    assert np.all(bound >= exact * (1 - 1e-8))
    assert np.all(bound <= exact / np.sqrt(c) * (1 + 1e-8))


@pytest.mark.parametrize("bounded", [False, True])
def test_rayleigh_residuals_match_the_dense_formula(bounded):
    """Quotients ``x^T K x / x^T M x`` and ``||K x - lambda M x||_{M^-1}`` against dense
    linear algebra (an explicit solve with M), on perturbed eigenvectors of a P2 mesh; an
    exact eigenvector gives its eigenvalue and a residual at round-off."""
    import scipy.linalg as la

    from mf_dmri.fem.error_estimates import rayleigh_residuals

    nodes, elements = _distorted_box(3, seed=4)
    piece = assemble_mesh(nodes, elements, order=2).pieces[0]
    stiffness, mass = piece.stiffness.toarray(), piece.mass.toarray()
    values, vectors = la.eigh(stiffness, mass)
    rng = np.random.default_rng(1)
    exact = vectors[:, 5:9]
    perturbed = exact + 1e-3 * rng.normal(size=exact.shape) * np.abs(exact).max()
    tests = np.hstack([exact, perturbed])
    bound = piece.mass_jacobi_bound if bounded else None
    quotients, norms = rayleigh_residuals(
        piece.stiffness, piece.mass, tests, tol=1e-10, chunk=3, jacobi_bound=bound
    )
    reference = np.einsum("ij,ij->j", tests, stiffness @ tests) / np.einsum(
        "ij,ij->j", tests, mass @ tests
    )
    np.testing.assert_allclose(quotients, reference, rtol=1e-12)
    np.testing.assert_allclose(quotients[:4], values[5:9], rtol=1e-10)
    residual = stiffness @ tests - (mass @ tests) * reference
    dual = np.sqrt(np.einsum("ij,ij->j", residual, np.linalg.solve(mass, residual)))
    assert np.all(norms[:4] <= 1e-8 * values[5:9] * np.sqrt(np.diag(tests.T @ mass @ tests))[:4])
    if bounded:  # the upper bound, at most 1 / sqrt(c) above the norm
        assert np.all(norms[4:] >= dual[4:] * (1 - 1e-8))
        assert np.all(norms[4:] <= dual[4:] / np.sqrt(bound) * (1 + 1e-8))
    else:
        np.testing.assert_allclose(norms[4:], dual[4:], rtol=1e-8)
