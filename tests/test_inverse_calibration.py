"""Calibration of the Laplace intervals: over repeated noise draws, the nominal 95%
interval must contain the truth 90-99% of the time (binomial sd 1.5% at 200 draws).

The quick test uses a cheap two-compartment model to check the machinery (scaled Hessian,
transformation back to physical units); the slow one repeats it on the cylinder model
with Rician noise."""

import pytest
import torch
from test_inverse_fit import BIEXP_TRUTH, biexp_parameters, biexponential
from test_inverse_helpers import fibre_directions, shell_protocol, single_thread  # noqa: F401

from mf_dmri.inverse import CylinderModel, fit, sample_noise
from mf_dmri.units import um

pytestmark = pytest.mark.usefixtures("single_thread")
F64 = torch.float64


def _coverage(forward, truth, parameters, sigma, likelihood, draws, seed):
    clean = forward({k: torch.tensor(v, dtype=F64) for k, v in truth.items()}).detach()
    generator = torch.Generator().manual_seed(seed)
    hits = {name: 0 for name in truth}
    used = 0
    for _ in range(draws):
        data = sample_noise(likelihood, clean, sigma, generator)
        result = fit(forward, data, parameters, likelihood=likelihood, sigma=sigma)
        if not result.convergence.converged:
            continue
        used += 1
        for name in truth:
            low, high = result.interval(name, 0.95)
            hits[name] += low <= truth[name] <= high
    assert used >= 0.95 * draws, f"only {used} of {draws} fits converged"
    return {name: count / used for name, count in hits.items()}


def test_laplace_interval_coverage_quick():
    coverage = _coverage(biexponential, BIEXP_TRUTH, biexp_parameters(), 0.01, "gaussian", 200, 0)
    for name, value in coverage.items():
        assert 0.90 <= value <= 0.99, (name, value)


@pytest.mark.slow
def test_laplace_interval_coverage_cylinder_rician():
    protocol = shell_protocol(
        [(80, 10, 30), (200, 10, 30), (300, 20, 30)], fibre_directions(8, 4, 2), b0=2
    )
    model = CylinderModel(unit_cutoff=30.0)
    truth = {"s0": 1.0, "radius": 4 * um, "intra_diffusivity": 1.8e-9}
    coverage = _coverage(model.bind(protocol), truth, model.parameters(), 1 / 30, "rician", 200, 1)
    for name, value in coverage.items():
        assert 0.90 <= value <= 0.99, (name, value)
