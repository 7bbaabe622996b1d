"""Surface relaxivity (Robin boundary condition) on a ball: the lowest rate against the
transcendental equation and the b = 0 signal against its eigenfunction series.

For -D Laplace u = lambda u in a ball of radius R with D du/dn + rho u = 0, the radial
(l = 0) modes are j0(alpha r), lambda = D alpha^2, with 1 - alpha R cot(alpha R) = rho R / D
(Brownstein & Tarr 1979, Phys. Rev. A 19:2446; Grebenkov 2007, Rev. Mod. Phys. 79:1077).
A uniform initial magnetisation only excites them: E(t) = sum_n w_n exp(-lambda_n t),
w_n = 3 (int_0^R j0 r^2 dr)^2 / (R^3 int_0^R j0^2 r^2 dr); at small rho R / D,
E ~ exp(-3 rho t / R) (the fast-diffusion limit).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from permeable_helpers import ball
from scipy.integrate import quad
from scipy.optimize import brentq

from mf_dmri.fem import PermeableParameters, permeable_eigenbasis, permeable_mesh
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal import coupled_signal

RADIUS, D = 5e-6, 2e-9


def robin_roots(ratio: float, count: int) -> np.ndarray:
    """alpha_n R, n < count: roots of 1 - x cot x = ratio, one in each (n pi, (n+1) pi)."""

    def f(x):
        return 1.0 - x / math.tan(x) - ratio

    eps = 1e-9
    return np.array([brentq(f, n * math.pi + eps, (n + 1) * math.pi - eps) for n in range(count)])


def series_signal(ratio: float, times: np.ndarray, count: int = 40) -> np.ndarray:
    roots = robin_roots(ratio, count) / RADIUS
    weights = []
    for alpha in roots:
        first = quad(lambda r, a=alpha: math.sin(a * r) * r / a, 0, RADIUS, limit=200)[0]
        norm = quad(lambda r, a=alpha: (math.sin(a * r) / a) ** 2, 0, RADIUS, limit=200)[0]
        weights.append(3 * first**2 / (RADIUS**3 * norm))
    weights = np.array(weights)
    return (weights[None] * np.exp(-D * roots[None] ** 2 * times[:, None])).sum(axis=1)


@pytest.fixture(scope="module")
def balls():
    return [permeable_mesh(*ball(RADIUS, refine)) for refine in (0, 1)]


@pytest.mark.parametrize("ratio", [0.5, 0.005])
def test_lowest_rate_converges_to_the_robin_root(balls, ratio):
    """Relative error of the lowest rate at two refinements (h halved): it decreases by a
    factor >= 3.3 (observed order ~1.9: 1.3e-2 -> 3.5e-3 -> 9.9e-4 at rho R / D = 0.5, the
    last level, 45825 nodes, measured outside the test suite)."""
    rho = ratio * D / RADIUS
    exact = D * (robin_roots(ratio, 1)[0] / RADIUS) ** 2
    errors = []
    for mesh in balls:
        basis = permeable_eigenbasis(
            mesh, PermeableParameters(D, surface_relaxivity=rho), num_modes=1
        )
        errors.append(abs(float(basis.rates[0]) / exact - 1))
    assert errors[1] < 5e-3
    assert errors[0] / errors[1] > 3.3, errors


@pytest.mark.parametrize("ratio", [0.5, 0.005])
def test_b0_signal_decays_as_the_robin_series(balls, ratio):
    """b = 0 signal of the finer ball vs the eigenfunction series, and at rho R / D = 0.005
    also vs exp(-3 rho t / R), at times up to lambda_0 t = 2.  The FEM rate error eps
    (3.5e-3 and 2.7e-3) bounds the error by about eps lambda_0 t: tolerance 1e-2."""
    rho = ratio * D / RADIUS
    exact = D * (robin_roots(ratio, 1)[0] / RADIUS) ** 2
    times = np.array([0.05, 0.25, 1.0, 2.0]) / exact
    durations = torch.tensor(np.diff(np.concatenate([[0.0], times])))
    pieces = GradientPieces(durations, torch.zeros(1, times.size, 3, dtype=torch.float64))
    params = PermeableParameters(D, surface_relaxivity=rho)
    basis = permeable_eigenbasis(balls[1], params, num_modes=40)
    fem = coupled_signal(basis, pieces, time_course=True)[0].real.numpy()
    reference = series_signal(ratio, times)
    assert np.abs(fem / reference - 1).max() < 1e-2, (fem, reference)
    if ratio < 0.01:
        fast = np.exp(-3 * rho * times / RADIUS)
        assert np.abs(fem / fast - 1).max() < 1e-2
    assert reference[-1] < 0.2  # relaxation is visible
