"""Closed-form Neumann eigenbases of the interval (slab), the disk and the ball.

Eigenfunctions (unit size, centred at the origin), following Grebenkov 2007 (Rev. Mod. Phys.
79, 1077, Sec. III and Table I) and Grebenkov 2008 (Concepts Magn. Reson. A 32, 277):

* interval [-1/2, 1/2]: cos(n pi (x + 1/2)), eigenvalue (n pi)^2;
* disk r <= 1: J_m(a r) {cos, sin}(m theta) with J_m'(a) = 0, eigenvalue a^2;
* ball r <= 1: j_l(a r) Y_lm(theta, phi) (real spherical harmonics) with j_l'(a) = 0.

First moments separate into radial and angular factors.  The radial integrals have the
closed forms (derived with Green's identity from the Neumann condition; Grebenkov 2008,
Eqs. 26-27), for orders n and n + 1 with roots a != b:

    int_0^1 J_n(a r) J_{n+1}(b r) r^2 dr = J_n(a) J_{n+1}(b) (a^2 + b^2 - 2 n (n+1)) / (a^2 - b^2)^2
    int_0^1 j_n(a r) j_{n+1}(b r) r^3 dr = j_n(a) j_{n+1}(b) (a^2 + b^2 - 2 n (n+2)) / (a^2 - b^2)^2

Roots of consecutive orders never coincide, so nothing divides by zero.  The angular factors
(integrals of trigonometric functions or real spherical harmonics times the direction
cosines) are integrated exactly by quadrature rules that are exact for the polynomial degree
involved (trapezoid rule on the circle, Gauss-Legendre x trapezoid on the sphere).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import jv, spherical_jn

from mf_dmri.analytic.roots import bessel_derivative_zeros, spherical_bessel_derivative_zeros
from mf_dmri.analytic.sphere_harmonics import real_spherical_harmonics_moments

UnitBasis = tuple[np.ndarray, np.ndarray, np.ndarray, float]


def _sorted(eigenvalues: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.argsort(eigenvalues, kind="stable")
    return (eigenvalues[order],) + tuple(a[order] for a in arrays)


def unit_interval_basis(max_eigenvalue: float) -> UnitBasis:
    """Interval of length 1 centred at 0: (eigenvalues, moments (1,L,L), integrals, length)."""
    count = int(math.floor(math.sqrt(max_eigenvalue) / math.pi)) + 1
    n = np.arange(count)
    eigenvalues = (n * math.pi) ** 2
    ni, nj = np.meshgrid(n, n, indexing="ij")
    odd = (ni + nj) % 2 == 1
    with np.errstate(divide="ignore", invalid="ignore"):
        # integral over [0, 1] of x cos(i pi x) cos(j pi x) (normalised), i + j odd
        both = -2.0 / math.pi**2 * (1.0 / (ni - nj) ** 2 + 1.0 / (ni + nj) ** 2)
        with_const = -2.0 * math.sqrt(2.0) / (math.pi**2 * np.maximum(ni, nj) ** 2)
    moment = np.where((ni == 0) | (nj == 0), with_const, both)
    moment = np.where(odd, moment, 0.0)  # the centred coordinate: even pairs vanish
    integrals = np.zeros(count)
    integrals[0] = 1.0
    return eigenvalues, moment[None], integrals, 1.0


def _disk_modes(max_root: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(roots a, orders m, parity: 0 for cos, 1 for sin) of the unit-disk modes."""
    roots, orders, parity = [0.0], [0], [0]
    order = 0
    while True:
        zeros = bessel_derivative_zeros(order, max_root)
        if zeros.size == 0 and order > 0:
            break
        for z in zeros:
            for p in (0, 1) if order > 0 else (0,):
                roots.append(z)
                orders.append(order)
                parity.append(p)
        order += 1
    a, m, p = np.array(roots), np.array(orders), np.array(parity)
    return _sorted(a, m, p)


def _radial_pairs(
    roots: np.ndarray, orders: np.ndarray, values: np.ndarray, degree_term: np.ndarray
) -> np.ndarray:
    """Radial integral matrix for pairs whose orders differ by one (zero elsewhere).

    ``values[i]`` is the radial function at r = 1 and ``degree_term[i, j]`` the term
    2 n (n+1) (disk) or 2 n (n+2) (ball) with n the lower order of the pair."""
    ai, aj = np.meshgrid(roots, roots, indexing="ij")
    adjacent = np.abs(orders[:, None] - orders[None, :]) == 1
    denominator = np.where(adjacent, (ai**2 - aj**2) ** 2, 1.0)
    radial = values[:, None] * values[None, :] * (ai**2 + aj**2 - degree_term) / denominator
    return np.where(adjacent, radial, 0.0)


def unit_disk_basis(max_eigenvalue: float) -> UnitBasis:
    """Unit disk: (eigenvalues, moments (2,L,L), integrals, area pi)."""
    a, m, parity = _disk_modes(math.sqrt(max_eigenvalue))
    boundary = jv(m, a)
    with np.errstate(divide="ignore", invalid="ignore"):
        radial_norm_sq = np.where(
            a > 0, 0.5 * (1.0 - m**2 / np.where(a > 0, a, 1.0) ** 2) * boundary**2, 0.5
        )
    angular_norm_sq = np.where(m == 0, 2.0 * math.pi, math.pi)
    norm = 1.0 / np.sqrt(radial_norm_sq * angular_norm_sq)
    low = np.minimum(m[:, None], m[None, :])
    radial = _radial_pairs(a, m, boundary, 2.0 * low * (low + 1))
    # exact angular integrals of Theta_i Theta_j (cos t, sin t): trapezoid rule on the circle
    n_theta = 4 * (int(m.max()) + 2)
    theta = 2.0 * math.pi * np.arange(n_theta) / n_theta
    trig = np.where(parity[:, None] == 0, np.cos(m[:, None] * theta), np.sin(m[:, None] * theta))
    weight = 2.0 * math.pi / n_theta
    angular = [(trig * (weight * f)) @ trig.T for f in (np.cos(theta), np.sin(theta))]
    scale = norm[:, None] * norm[None, :] * radial
    moments = np.stack([scale * ang for ang in angular])
    integrals = np.zeros(a.size)
    integrals[0] = math.sqrt(math.pi)
    return a**2, moments, integrals, math.pi


def _ball_modes(max_root: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(roots a, degrees l, orders m in -l..l) of the unit-ball modes."""
    roots, degrees, orders = [0.0], [0], [0]
    degree = 0
    while True:
        zeros = spherical_bessel_derivative_zeros(degree, max_root)
        if zeros.size == 0 and degree > 0:
            break
        for z in zeros:
            for order in range(-degree, degree + 1):
                roots.append(z)
                degrees.append(degree)
                orders.append(order)
        degree += 1
    return _sorted(np.array(roots), np.array(degrees), np.array(orders))


def unit_ball_basis(max_eigenvalue: float) -> UnitBasis:
    """Unit ball: (eigenvalues, moments (3,L,L), integrals, volume 4 pi / 3)."""
    a, l, m = _ball_modes(math.sqrt(max_eigenvalue))
    boundary = spherical_jn(l, a)
    radial_norm_sq = np.where(
        a > 0, 0.5 * boundary**2 * (1.0 - l * (l + 1) / np.where(a > 0, a, 1.0) ** 2), 1.0 / 3.0
    )
    norm = 1.0 / np.sqrt(radial_norm_sq)
    low = np.minimum(l[:, None], l[None, :])
    radial = _radial_pairs(a, l, boundary, 2.0 * low * (low + 2))
    degree_max = int(l.max())
    angular = real_spherical_harmonics_moments(degree_max)  # (3, K, K), K = (lmax+1)^2
    index = l * l + l + m
    scale = norm[:, None] * norm[None, :] * radial
    moments = np.stack([scale * ang[np.ix_(index, index)] for ang in angular])
    integrals = np.zeros(a.size)
    integrals[0] = math.sqrt(4.0 * math.pi / 3.0)
    return a**2, moments, integrals, 4.0 * math.pi / 3.0
