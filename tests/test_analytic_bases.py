"""Closed-form analytic eigenbases against independent quadrature of the eigenfunctions.

Closed forms: Grebenkov 2007 (Rev. Mod. Phys. 79, 1077, Table I) and Grebenkov 2008
(Concepts Magn. Reson. A 32, 277); checked here against brute-force Gauss quadrature of
x_k phi_i phi_j built directly from scipy's Bessel functions and spherical harmonics."""

import math

import numpy as np
import pytest
import torch
from scipy.special import jnp_zeros, jv, roots_legendre, spherical_jn

from mf_dmri.analytic import ball_basis, disk_basis, interval_basis
from mf_dmri.analytic.bases import (
    _ball_modes,
    _disk_modes,
    unit_ball_basis,
    unit_disk_basis,
    unit_interval_basis,
)
from mf_dmri.analytic.roots import spherical_bessel_derivative_zeros
from mf_dmri.analytic.sphere_harmonics import real_spherical_harmonics
from mf_dmri.eigenbasis import CLUSTER_RTOL
from mf_dmri.plausibility import UNCHECKED


def test_disk_roots_match_scipy():
    from mf_dmri.analytic.roots import bessel_derivative_zeros

    for m in (0, 1, 5, 20):
        zeros = bessel_derivative_zeros(m, 60.0)
        np.testing.assert_allclose(zeros, jnp_zeros(m, zeros.size), rtol=1e-13)


def test_spherical_roots_are_zeros():
    for l in (0, 1, 4, 12):
        zeros = spherical_bessel_derivative_zeros(l, 50.0)
        assert np.abs(spherical_jn(l, zeros, derivative=True)).max() < 1e-12
    # first zeros: j_0' -> 4.4934 (tan x = x), j_1' -> 2.0816 (Grebenkov 2007 Table I)
    assert spherical_bessel_derivative_zeros(0, 5)[0] == pytest.approx(4.493409457909064)
    assert spherical_bessel_derivative_zeros(1, 3)[0] == pytest.approx(2.081575977818101)


def test_interval_moments_by_quadrature():
    lam, moments, integrals, _ = unit_interval_basis(900.0)
    x, w = roots_legendre(120)
    x, w = 0.5 * x, 0.5 * w
    n = np.arange(lam.size)[:, None]
    phi = np.where(n == 0, 1.0, math.sqrt(2.0)) * np.cos(n * math.pi * (x + 0.5))
    np.testing.assert_allclose((phi * w * x) @ phi.T, moments[0], atol=1e-14)
    np.testing.assert_allclose((phi * w) @ phi.T, np.eye(lam.size), atol=1e-13)
    np.testing.assert_allclose(phi @ w, integrals, atol=1e-14)


def test_disk_moments_by_quadrature():
    lam, moments, integrals, area = unit_disk_basis(150.0)
    a, m, parity = _disk_modes(math.sqrt(150.0))
    r, wr = roots_legendre(150)
    r, wr = 0.5 * (r + 1), 0.5 * wr
    theta = 2 * math.pi * np.arange(128) / 128
    rr, tt = np.meshgrid(r, theta, indexing="ij")
    weight = (wr[:, None] * rr * 2 * math.pi / 128).ravel()
    ang = np.where(
        parity[:, None] == 0, np.cos(m[:, None] * tt.ravel()), np.sin(m[:, None] * tt.ravel())
    )
    phi = jv(m[:, None], a[:, None] * rr.ravel()) * ang
    phi /= np.sqrt((phi**2) @ weight)[:, None]
    assert area == pytest.approx(math.pi)
    for k, coord in enumerate((rr * np.cos(tt), rr * np.sin(tt))):
        np.testing.assert_allclose((phi * weight * coord.ravel()) @ phi.T, moments[k], atol=1e-13)
    np.testing.assert_allclose(phi @ weight, integrals, atol=1e-13)
    np.testing.assert_allclose(lam, a**2)


def test_ball_moments_by_quadrature():
    lam, moments, integrals, volume = unit_ball_basis(100.0)
    a, l, m = _ball_modes(10.0)
    r, wr = roots_legendre(70)
    r, wr = 0.5 * (r + 1), 0.5 * wr
    mu, wm = roots_legendre(25)
    phis = 2 * math.pi * np.arange(52) / 52
    rr, uu, pp = np.meshgrid(r, mu, phis, indexing="ij")
    weight = (wr[:, None, None] * rr**2 * wm[None, :, None] * 2 * math.pi / 52).ravel()
    harmonics = real_spherical_harmonics(int(l.max()), np.arccos(uu.ravel()), pp.ravel())
    phi = spherical_jn(l[:, None], a[:, None] * rr.ravel()) * harmonics[l * l + l + m]
    phi /= np.sqrt((phi**2) @ weight)[:, None]
    sin_t = np.sqrt(1 - uu**2)
    coords = (rr * sin_t * np.cos(pp), rr * sin_t * np.sin(pp), rr * uu)
    assert volume == pytest.approx(4 * math.pi / 3)
    for k, coord in enumerate(coords):
        np.testing.assert_allclose((phi * weight * coord.ravel()) @ phi.T, moments[k], atol=1e-13)
    np.testing.assert_allclose(phi @ weight, integrals, atol=1e-13)


@pytest.mark.parametrize(
    "builder,size,dim", [(interval_basis, 10e-6, 1), (disk_basis, 5e-6, 2), (ball_basis, 5e-6, 3)]
)
def test_scaling_and_sum_rules(builder, size, dim):
    basis = builder(size)
    assert basis.dimension == dim
    assert float(basis.eigenvalues[0]) == 0.0  # constant mode exact
    # sum_k (integral x phi_0 phi_k)^2 = <x^2>: L^2/12, R^2/4, R^2/5 (completeness)
    second_moment = {1: size**2 / 12, 2: size**2 / 4, 3: size**2 / 5}[dim]
    first_row = basis.moments[0, 0, :]
    assert float((first_row**2).sum()) == pytest.approx(second_moment, rel=1e-4)
    # eigenvalues scale as 1 / size^2 exactly
    double = builder(2 * size, max_eigenvalue=float(basis.eigenvalues[-1]) / 4 * (1 + 1e-9))
    torch.testing.assert_close(double.eigenvalues, basis.eigenvalues / 4, rtol=1e-12, atol=0)


@pytest.mark.parametrize("builder", [disk_basis, ball_basis])
def test_clusters_never_cut(builder):
    radius = 3e-6
    for cutoff in (30.0, 77.0, 150.0):
        basis = builder(radius, max_eigenvalue=cutoff / radius**2)
        full = builder(radius, max_eigenvalue=2 * cutoff / radius**2)
        lam, nxt = basis.eigenvalues, full.eigenvalues[basis.num_modes]
        assert float(nxt - lam[-1]) > CLUSTER_RTOL * float(lam[-1])
        assert float(lam[-1]) <= cutoff / radius**2


def test_multiplicities():
    unit = {"max_eigenvalue": 30.0, "plausibility": UNCHECKED}  # non-dimensional radius 1
    disk = disk_basis(1.0, **unit)
    ball = ball_basis(1.0, **unit)
    assert _multiplicities(disk.eigenvalues)[:4] == [1, 2, 2, 1]  # m=0, m=1, m=2, (0,1)
    assert _multiplicities(ball.eigenvalues)[:4] == [1, 3, 5, 1]  # l=0, l=1, l=2, (0,1)


def _multiplicities(values):
    counts, last = [], None
    for v in values.tolist():
        if last is not None and abs(v - last) <= 1e-9 * max(abs(v), 1):
            counts[-1] += 1
        else:
            counts.append(1)
        last = v
    return counts


def test_radius_gradient_is_exact():
    radius = torch.tensor(4e-6, dtype=torch.float64, requires_grad=True)
    basis = ball_basis(radius, max_eigenvalue=40 / 16e-12)
    (basis.eigenvalues.sum() + basis.moments.abs().sum() / radius.detach()).backward()
    lam = basis.eigenvalues.detach()
    expected = -2 * lam.sum() / radius.detach() + 0.0
    assert float(radius.grad) == pytest.approx(float(expected), rel=1e-12)


def test_bad_inputs():
    with pytest.raises(ValueError, match="radius must be positive"):
        disk_basis(-1e-6)
    with pytest.raises(ValueError, match="NaN"):
        ball_basis(float("nan"))
    with pytest.raises(ValueError, match="either max_eigenvalue or length_scale"):
        ball_basis(1e-6, max_eigenvalue=1.0, length_scale=1e-6)
