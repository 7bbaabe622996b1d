"""An independent high-accuracy matrix-formalism evaluation in numpy/scipy for tests.

Large bases restricted by symmetry to the modes a gradient along one axis can reach (ball:
m = 0 about z; disk: cos(m theta) modes for x; interval: all), moment matrices by brute-force
Gauss quadrature of the eigenfunctions (not the closed forms of mf_dmri.analytic), and
propagation by scipy.linalg.expm.  Neumann eigenfunctions as in Grebenkov 2007 (Rev. Mod.
Phys. 79, 1077, Table I)."""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import expm
from scipy.special import eval_legendre, jnp_zeros, jv, roots_legendre, spherical_jn

from mf_dmri.analytic.roots import spherical_bessel_derivative_zeros
from mf_dmri.units import GAMMA_PROTON


def _gauss(n, a, b):
    x, w = roots_legendre(n)
    return 0.5 * (b - a) * x + 0.5 * (b + a), 0.5 * (b - a) * w


def slab_z(max_root):
    """Unit interval [-1/2, 1/2]: eigenvalues and the x-moment matrix by quadrature."""
    n = np.arange(int(max_root / math.pi) + 1)
    x, w = _gauss(4 * n.size + 50, -0.5, 0.5)
    phi = np.where(n[:, None] == 0, 1.0, math.sqrt(2)) * np.cos(n[:, None] * math.pi * (x + 0.5))
    return (n * math.pi) ** 2, (phi * w * x) @ phi.T


def disk_x(max_root):
    """Unit disk, cos(m theta) modes: eigenvalues and x-moment matrix (radial quadrature,
    angular factor int cos(m t) cos(m' t) cos(t) dt = pi/2 (1 + delta_{min(m,m'),0})."""
    roots, orders = [0.0], [0]
    m = 0
    while True:
        count = int(max_root / math.pi) + 3
        z = jnp_zeros(m, count)
        z = z[z <= max_root]
        if z.size == 0 and m > 0:
            break
        roots += list(z)
        orders += [m] * z.size
        m += 1
    a, m = np.array(roots), np.array(orders)
    r, w = _gauss(600, 0.0, 1.0)
    radial = jv(m[:, None], a[:, None] * r)
    norm_sq = (radial**2 * r * w).sum(1) * np.where(m == 0, 2 * math.pi, math.pi)
    radial /= np.sqrt(norm_sq)[:, None]
    rad = (radial * r**2 * w) @ radial.T
    low = np.minimum(m[:, None], m[None, :])
    ang = np.where(np.abs(m[:, None] - m[None, :]) == 1, 0.5 * math.pi * (1 + (low == 0)), 0.0)
    order = np.argsort(a, kind="stable")
    return (a**2)[order], (rad * ang)[np.ix_(order, order)]


def ball_z(max_root):
    """Unit ball, m = 0 modes: eigenvalues and z-moment matrix by 2-D quadrature."""
    roots, degrees = [0.0], [0]
    l = 0
    while True:
        z = spherical_bessel_derivative_zeros(l, max_root)
        if z.size == 0 and l > 0:
            break
        roots += list(z)
        degrees += [l] * z.size
        l += 1
    a, l = np.array(roots), np.array(degrees)
    r, wr = _gauss(500, 0.0, 1.0)
    mu, wm = _gauss(int(l.max()) + 4, -1.0, 1.0)
    radial = spherical_jn(l[:, None], a[:, None] * r)
    radial /= np.sqrt((radial**2 * r**2 * wr).sum(1))[:, None]
    angular = eval_legendre(l[:, None], mu) * np.sqrt((2 * l[:, None] + 1) / 2)
    rad = (radial * r**3 * wr) @ radial.T
    ang = (angular * mu * wm) @ angular.T
    order = np.argsort(a, kind="stable")
    return (a**2)[order], (rad * ang)[np.ix_(order, order)]


def pgse_signal(unit_data, size, diffusivity, pulse_duration, pulse_separation, amplitudes):
    """E for PGSE along the symmetry axis of ``unit_data`` scaled to ``size`` [m]."""
    lam, q = unit_data
    lam, q = lam / size**2, q * size
    out = []
    for g in np.atleast_1d(amplitudes):
        a = diffusivity * np.diag(lam) + 1j * GAMMA_PROTON * g * q
        first = expm(-pulse_duration * a)
        middle = np.exp(-(pulse_separation - pulse_duration) * diffusivity * lam)
        last = expm(-pulse_duration * np.conj(a))
        out.append((last @ (middle * first[:, 0]))[0])
    return np.array(out)
