"""Axial subspaces of the unit disk and ball: the modes a gradient along one axis reaches.

A gradient along the first local axis x couples, in the disk, cos(m theta) only with
cos((m +- 1) theta) (theta from x), and in the ball, with x as the polar axis, Y_l0 only
with Y_(l+-1)0.  Starting from the uniform density (the m = 0 mode), a waveform whose
pieces are all parallel therefore only ever reaches these axial modes, and its signal from
the axial modes is exactly that of the full basis (Grebenkov 2007, Rev. Mod. Phys. 79,
1077, Sec. IV.B; the same reduction as :mod:`mf_dmri.signal.reduction`, done in closed
form).  The axial set grows like K^2 (disk and ball) where the full basis grows like K^2
(disk) and K^3 (ball), K = R sqrt(lambda_max), which makes large q R affordable.

The returned moment matrices hold the first local axis only; the other components are
zero, so the data are only valid for gradients along the first axis (the signal layer
uses them only for waveforms canonicalised onto that axis).

Angular factors: int_0^{2 pi} cos(m t) cos(m' t) cos t dt = pi/2 (|m - m'| = 1, both
>= 1) or pi (one of them 0); int Y_l0 Y_(l+1)0 cos(theta) dOmega =
(l + 1) / sqrt((2l + 1)(2l + 3)).  Radial factors as in :mod:`mf_dmri.analytic.bases`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import jv, spherical_jn

from mf_dmri.analytic.bases import UnitBasis, _radial_pairs, _sorted
from mf_dmri.analytic.roots import bessel_derivative_zeros, spherical_bessel_derivative_zeros


def _axial_roots(zeros_of, max_root: float) -> tuple[np.ndarray, np.ndarray]:
    """(roots, orders) of one mode per root of each order, plus the constant mode."""
    roots, orders = [0.0], [0]
    order = 0
    while True:
        zeros = zeros_of(order, max_root)
        if zeros.size == 0 and order > 0:
            break
        roots.extend(zeros)
        orders.extend([order] * zeros.size)
        order += 1
    return _sorted(np.array(roots), np.array(orders))


def unit_disk_axial_basis(max_eigenvalue: float) -> UnitBasis:
    """Axial modes J_m(a r) cos(m theta) of the unit disk: (eigenvalues, moments (2, L, L)
    with the x moment first and a zero y moment, integrals, area pi)."""
    a, m = _axial_roots(bessel_derivative_zeros, math.sqrt(max_eigenvalue))
    boundary = jv(m, a)
    safe = np.where(a > 0, a, 1.0)
    radial_norm_sq = np.where(a > 0, 0.5 * (1.0 - m**2 / safe**2) * boundary**2, 0.5)
    norm = 1.0 / np.sqrt(radial_norm_sq * np.where(m == 0, 2.0 * math.pi, math.pi))
    low = np.minimum(m[:, None], m[None, :])
    radial = _radial_pairs(a, m, boundary, 2.0 * low * (low + 1))
    angular = np.where(low == 0, math.pi, 0.5 * math.pi)
    moments = np.zeros((2, a.size, a.size))
    moments[0] = norm[:, None] * norm[None, :] * radial * angular
    integrals = np.zeros(a.size)
    integrals[0] = math.sqrt(math.pi)
    return a**2, moments, integrals, math.pi


def unit_ball_axial_basis(max_eigenvalue: float) -> UnitBasis:
    """Axial modes j_l(a r) Y_l0 of the unit ball (polar axis = first local axis):
    (eigenvalues, moments (3, L, L) with only the first component non-zero, integrals,
    volume 4 pi / 3)."""
    a, l = _axial_roots(spherical_bessel_derivative_zeros, math.sqrt(max_eigenvalue))
    boundary = spherical_jn(l, a)
    safe = np.where(a > 0, a, 1.0)
    radial_norm_sq = np.where(a > 0, 0.5 * boundary**2 * (1.0 - l * (l + 1) / safe**2), 1 / 3)
    norm = 1.0 / np.sqrt(radial_norm_sq)
    low = np.minimum(l[:, None], l[None, :])
    radial = _radial_pairs(a, l, boundary, 2.0 * low * (low + 2))
    angular = (low + 1) / np.sqrt((2 * low + 1) * (2 * low + 3))
    moments = np.zeros((3, a.size, a.size))
    moments[0] = norm[:, None] * norm[None, :] * radial * angular
    integrals = np.zeros(a.size)
    integrals[0] = math.sqrt(4.0 * math.pi / 3.0)
    return a**2, moments, integrals, 4.0 * math.pi / 3.0
