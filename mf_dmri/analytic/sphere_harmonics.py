"""Real spherical harmonics and their exact first-moment (direction-cosine) integrals."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import roots_legendre, sph_harm_y


def real_spherical_harmonics(degree_max: int, polar: np.ndarray, azimuth: np.ndarray) -> np.ndarray:
    """Orthonormal real spherical harmonics Y_lm, rows indexed l*l + l + m, (K, n_points).

    m > 0: sqrt(2) Re Y_l^m, m < 0: sqrt(2) Im Y_l^|m|, m = 0: Y_l^0 (complex Y_l^m from
    scipy.special.sph_harm_y with the Condon-Shortley phase)."""
    rows = []
    for degree in range(degree_max + 1):
        for order in range(-degree, degree + 1):
            value = sph_harm_y(degree, abs(order), polar, azimuth)
            if order > 0:
                rows.append(math.sqrt(2.0) * value.real)
            elif order < 0:
                rows.append(math.sqrt(2.0) * value.imag)
            else:
                rows.append(value.real)
    return np.array(rows)


def real_spherical_harmonics_moments(degree_max: int) -> np.ndarray:
    """Integrals over the unit sphere of Y_i Y_j n_k for k = x, y, z, shape (3, K, K).

    Gauss-Legendre in cos(theta) with degree_max + 2 nodes times the trapezoid rule in phi
    with 2 degree_max + 3 nodes integrate these polynomials of degree <= 2 degree_max + 1
    exactly."""
    nodes, weights = roots_legendre(degree_max + 2)
    n_phi = 2 * degree_max + 3
    azimuth = 2.0 * math.pi * np.arange(n_phi) / n_phi
    polar_grid, azimuth_grid = np.meshgrid(np.arccos(nodes), azimuth, indexing="ij")
    weight = (weights[:, None] * np.full(n_phi, 2.0 * math.pi / n_phi)[None, :]).ravel()
    polar, phi = polar_grid.ravel(), azimuth_grid.ravel()
    harmonics = real_spherical_harmonics(degree_max, polar, phi)
    directions = (np.sin(polar) * np.cos(phi), np.sin(polar) * np.sin(phi), np.cos(polar))
    return np.stack([(harmonics * (weight * d)) @ harmonics.T for d in directions])
