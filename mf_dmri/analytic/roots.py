"""Zeros of the derivatives of Bessel and spherical Bessel functions.

The Neumann eigenvalues of the unit disk are the squares of the zeros of J_m' and those of
the unit ball the squares of the zeros of j_l' (Grebenkov 2007, Rev. Mod. Phys. 79, 1077,
Table I).  Zeros are found by sign changes on a fine grid refined with Brent's method, which
is robust for every order (consecutive zeros are at least ~2.4 apart, the grid step is 0.05).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import brentq
from scipy.special import jvp, spherical_jn

_GRID_STEP = 0.05


def _bracketed_zeros(
    func: Callable[[np.ndarray], np.ndarray], start: float, stop: float
) -> np.ndarray:
    """All zeros of ``func`` on (start, stop], located on a grid and polished with brentq."""
    if stop <= start:
        return np.zeros(0)
    grid = np.arange(start, stop + _GRID_STEP, _GRID_STEP)
    grid[0] = start
    values = func(grid)
    sign_change = np.nonzero(np.sign(values[:-1]) * np.sign(values[1:]) < 0)[0]
    zeros = [
        brentq(
            lambda x: float(func(np.array([x]))[0]),
            grid[i],
            grid[i + 1],
            xtol=1e-15,
            rtol=1e-15,
            maxiter=200,
        )
        for i in sign_change
    ]
    exact = np.nonzero(values == 0)[0]
    zeros.extend(grid[i] for i in exact if grid[i] > start)
    return np.array(sorted(z for z in zeros if z <= stop))


def bessel_derivative_zeros(order: int, max_root: float) -> np.ndarray:
    """Positive zeros of J_order'(x) up to ``max_root`` (the root x = 0 of J_0' excluded)."""
    if order < 0:
        raise ValueError("order must be >= 0")
    # J_m'(x) has no zero below x = m (for m >= 1); start just above 0 to skip x = 0.
    start = max(order - 1.0, 0.0) + 1e-3
    return _bracketed_zeros(lambda x: jvp(order, x), start, max_root)


def spherical_bessel_derivative_zeros(order: int, max_root: float) -> np.ndarray:
    """Positive zeros of j_order'(x) up to ``max_root`` (the root x = 0 of j_0' excluded)."""
    if order < 0:
        raise ValueError("order must be >= 0")
    start = max(order - 1.0, 0.0) + 1e-3
    return _bracketed_zeros(lambda x: spherical_jn(order, x, derivative=True), start, max_root)
