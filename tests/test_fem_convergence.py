"""FEM Neumann eigenvalues converge to closed forms at the expected rates, with the right
multiplicities.

References for the closed forms:
* disk of radius R: lambda = (j'_{m,n} / R)^2, zeros of J_m' (multiplicity 1 for m = 0, else 2);
* ball of radius R: lambda = (a_{l,n} / R)^2, zeros of the spherical Bessel derivative j_l'
  (multiplicity 2 l + 1);
* square of side a: lambda = pi^2 (m^2 + n^2) / a^2.
(D. S. Grebenkov, "NMR survey of reflected Brownian motion", Rev. Mod. Phys. 79, 1077 (2007),
Sec. IV and Appendix.)  A-priori rates: P1 eigenvalue error ~ h^2, P2 ~ h^4 (Babuska & Osborn,
Handbook of Numerical Analysis II, 1991).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import jnp_zeros, spherical_jn
from skfem import MeshTet, MeshTri

from mf_dmri.fem import mesh_eigenbasis

RADIUS = 5e-6  # [m]


def spherical_neumann_zero(order: int, index: int) -> float:
    """index-th positive zero of j_l'(x) by brentq on a fine bracket scan."""
    grid = np.linspace(1e-3, 40.0, 40001)
    values = spherical_jn(order, grid, derivative=True)
    brackets = np.flatnonzero(np.sign(values[:-1]) * np.sign(values[1:]) < 0)
    a, b = grid[brackets[index - 1]], grid[brackets[index - 1] + 1]
    return brentq(lambda x: spherical_jn(order, x, derivative=True), a, b, xtol=1e-14)


def scaled(mesh, factor):
    return mesh.p.T * factor, mesh.t.T


def fitted_rate(sizes, errors) -> float:
    return float(np.polyfit(np.log(sizes), np.log(errors), 1)[0])


def test_spherical_zero_finder_matches_known_values():
    # a_{1,1} = 2.081575977, a_{0,1} = 4.493409458 (= first zero of j_1)
    assert spherical_neumann_zero(1, 1) == pytest.approx(2.0815759778, rel=1e-9)
    assert spherical_neumann_zero(0, 1) == pytest.approx(4.4934094579, rel=1e-9)


def test_disk_p1_rate_and_multiplicities():
    exact = np.array([jnp_zeros(1, 1)[0], jnp_zeros(2, 1)[0], jnp_zeros(0, 1)[0]]) ** 2
    exact = exact / RADIUS**2
    errors, sizes = [], []
    for refinements in (3, 4, 5):
        basis = mesh_eigenbasis(
            *scaled(MeshTri.init_circle(refinements), RADIUS),
            max_eigenvalue=1.05 * exact[2],
            order=1,
        )
        lam = basis.eigenvalues.numpy()
        # P1 eigenvalues lie above the exact ones (min-max) on the inscribed polygon too
        errors.append([(lam[1] - exact[0]) / exact[0], (lam[3] - exact[1]) / exact[1]])
        sizes.append(2.0**-refinements)
    errors = np.array(errors)
    assert np.all(errors > 0)
    for column in errors.T:
        assert 1.8 < fitted_rate(sizes, column) < 2.2
    # multiplicities 1 (zero), 2 (m=1), 2 (m=2), 1 (m=0, n=1): assign to the nearest exact value
    assert basis.num_modes == 6
    nearest = np.argmin(np.abs(lam[1:, None] - exact[None, :]), axis=1)
    assert np.bincount(nearest).tolist() == [2, 2, 1]
    assert lam[0] == 0.0


def test_ball_p1_rate_and_multiplicities():
    a11, a21, a01 = (
        spherical_neumann_zero(1, 1),
        spherical_neumann_zero(2, 1),
        spherical_neumann_zero(0, 1),
    )
    exact = np.array([a11, a21, a01]) ** 2 / RADIUS**2
    errors = []
    for refinements in (2, 3, 4):
        basis = mesh_eigenbasis(
            *scaled(MeshTet.init_ball(refinements), RADIUS), max_eigenvalue=1.4 * exact[1], order=1
        )
        lam = basis.eigenvalues.numpy()
        errors.append(
            [(lam[1:4].mean() - exact[0]) / exact[0], (lam[4:9].mean() - exact[1]) / exact[1]]
        )
    errors = np.array(errors)
    sizes = 2.0 ** -np.arange(2, 5)
    for column in errors.T:  # the finest pair is in the asymptotic range
        assert 1.6 < fitted_rate(sizes[1:], column[1:]) < 2.4
    # multiplicities 1, 3, 5 (l = 0, 1, 2)
    assert basis.num_modes == 9
    nearest = np.argmin(np.abs(lam[1:, None] - exact[None, :2]), axis=1)
    assert np.bincount(nearest).tolist() == [3, 5]
    assert np.all(np.abs(lam[1:] - exact[nearest]) / exact[nearest] < 0.04)


@pytest.mark.parametrize(("order", "low", "high"), [(1, 1.8, 2.2), (2, 3.7, 4.3)])
def test_square_rates_p1_p2(order, low, high):
    side = 10e-6
    unit = (np.pi / side) ** 2
    errors, sizes = [], []
    for cells in (4, 8, 16):
        grid = np.linspace(0.0, side, cells + 1)
        basis = mesh_eigenbasis(
            MeshTri.init_tensor(grid, grid), max_eigenvalue=2.3 * unit, order=order
        )
        lam = basis.eigenvalues.numpy() / unit
        assert basis.num_modes == 4  # 0, 1, 1, 2 (pi/a)^2
        errors.append(abs(lam[3] - 2.0) / 2.0)
        sizes.append(side / cells)
    assert low < fitted_rate(sizes, errors) < high


def test_cube_p2_beats_p1_at_equal_mesh():
    side = 4e-6
    grid = np.linspace(0.0, side, 5)
    mesh = MeshTet.init_tensor(grid, grid, grid)
    unit = (np.pi / side) ** 2
    p1 = mesh_eigenbasis(mesh, max_eigenvalue=1.2 * unit, order=1).eigenvalues.numpy()
    p2 = mesh_eigenbasis(mesh, max_eigenvalue=1.2 * unit, order=2).eigenvalues.numpy()
    assert p1.size == p2.size == 4  # 0 and the triple (pi/a)^2
    err1, err2 = np.abs(p1[1:] / unit - 1), np.abs(p2[1:] / unit - 1)
    assert err2.max() < 0.05 * err1.min()
