"""Narrow-pulse (short gradient pulse, delta -> 0) PGSE signals, E(q, Delta) with
q = gamma G delta [rad/m].

Valid when the pulse duration is much shorter than the time to diffuse across the pore
(delta << R^2 / D); the matrix formalism approaches them linearly in delta.
References: Tanner and Stejskal 1968 (J. Chem. Phys. 49, 1768) for the slab; Balinov et al.
1993 (J. Magn. Reson. A 104, 17) for the sphere; Callaghan 1995 (J. Magn. Reson. A 113, 53)
for the cylinder.  Singular-looking terms (qR equal to a root) are removable; avoid
evaluating exactly there.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import jv, jvp, spherical_jn

from mf_dmri.analytic.roots import bessel_derivative_zeros, spherical_bessel_derivative_zeros


def _check(wavevector: np.ndarray, separation: float, size: float, diffusivity: float):
    q = np.atleast_1d(np.asarray(wavevector, dtype=float))
    if np.any(q <= 0):
        raise ValueError("wavevector q must be positive [rad/m] (E = 1 at q = 0)")
    if not (separation > 0 and size > 0 and diffusivity > 0):
        raise ValueError("pulse_separation [s], size [m] and diffusivity [m^2/s] must be > 0")
    return q


def narrow_pulse_slab(
    wavevector: np.ndarray,
    pulse_separation: float,
    width: float,
    diffusivity: float,
    num_terms: int = 400,
) -> np.ndarray:
    """Slab of ``width`` [m], q [rad/m] along the normal, ``pulse_separation`` [s],
    ``diffusivity`` [m^2/s]."""
    q = _check(wavevector, pulse_separation, width, diffusivity)
    x = q * width
    n = np.arange(1, num_terms + 1)[:, None]
    decay = np.exp(-((n * math.pi / width) ** 2) * diffusivity * pulse_separation)
    terms = decay * (1 - (-1.0) ** n * np.cos(x)) / (x**2 - (n * math.pi) ** 2) ** 2
    return 2 * (1 - np.cos(x)) / x**2 + 4 * x**2 * terms.sum(0)


def narrow_pulse_sphere(
    wavevector: np.ndarray,
    pulse_separation: float,
    radius: float,
    diffusivity: float,
    max_root: float = 150.0,
) -> np.ndarray:
    """Sphere of ``radius`` [m]; other arguments as in ``narrow_pulse_slab``."""
    q = _check(wavevector, pulse_separation, radius, diffusivity)
    x = q * radius
    total = 9 * (x * np.cos(x) - np.sin(x)) ** 2 / x**6
    degree = 0
    while True:
        roots = spherical_bessel_derivative_zeros(degree, max_root)
        if roots.size == 0 and degree > 0:
            break
        a = roots[:, None]
        weight = (2 * degree + 1) * a**2 / (a**2 - degree * (degree + 1))
        decay = np.exp(-(a**2) * diffusivity * pulse_separation / radius**2)
        deriv = spherical_jn(degree, x, derivative=True) ** 2
        total = total + 6 * x**2 * (weight * decay * deriv / (a**2 - x**2) ** 2).sum(0)
        degree += 1
    return total


def narrow_pulse_cylinder(
    wavevector: np.ndarray,
    pulse_separation: float,
    radius: float,
    diffusivity: float,
    max_root: float = 150.0,
) -> np.ndarray:
    """Cylinder of ``radius`` [m], q perpendicular to the axis; other arguments as in
    ``narrow_pulse_slab``."""
    q = _check(wavevector, pulse_separation, radius, diffusivity)
    x = q * radius
    total = 4 * jv(1, x) ** 2 / x**2
    order = 0
    while True:
        roots = bessel_derivative_zeros(order, max_root)
        if roots.size == 0 and order > 0:
            break
        a = roots[:, None]
        decay = np.exp(-(a**2) * diffusivity * pulse_separation / radius**2)
        # |integral of phi_mk exp(i q x)|^2 / V for the cos(m theta) modes (Lommel integral)
        weight = 4.0 if order == 0 else 8.0 * a**2 / (a**2 - order**2)
        derivative = jvp(order, x) ** 2
        total = total + (weight * decay * x**2 * derivative / (x**2 - a**2) ** 2).sum(0)
        order += 1
    return total
