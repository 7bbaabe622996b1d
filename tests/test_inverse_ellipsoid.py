"""Ellipsoid model by the finite-element path: convergence to the analytic sphere under
mesh refinement, derivatives against finite differences, and a fit of the semi-axes."""

import warnings

import pytest
import torch
from test_inverse_helpers import single_thread  # noqa: F401

from mf_dmri.inverse import PGSEProtocol, SphereModel, fit, jacobian, sample_noise
from mf_dmri.inverse.ellipsoid import EllipsoidModel
from mf_dmri.sequences import fibonacci_sphere
from mf_dmri.units import ms, um

pytestmark = [
    pytest.mark.usefixtures("single_thread"),
    pytest.mark.filterwarnings("ignore:The given NumPy array is not writable"),
]
F64 = torch.float64
PROTOCOL = PGSEProtocol(
    [10 * ms] * 2,
    [30 * ms] * 2,
    [0.08, 0.16],
    fibonacci_sphere(12, hemisphere=True),
    b0_measurements=1,
)


@pytest.fixture(scope="module")
def coarse():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EllipsoidModel.from_unit_ball(
            element_size=0.6, subdivisions=1, num_modes=20, fit_orientation=True
        )


def test_sphere_limit_converges_at_second_order():
    """Semi-axes all equal to R: the P1 signal approaches the analytic sphere (Grebenkov
    2007 closed-form ball basis, fine cutoff); halving the element size divides the error
    by about 4 (measured 2.9 then 4.3 over three levels; 104, 444, 1883 nodes)."""
    values = {
        "s0": 1.0,
        "semi_axis_1": 4 * um,
        "semi_axis_2": 4 * um,
        "semi_axis_3": 4 * um,
        "intra_diffusivity": 2e-9,
    }
    reference = SphereModel(unit_cutoff=300.0)(
        {"s0": 1.0, "radius": 4 * um, "intra_diffusivity": 2e-9}, PROTOCOL
    )
    errors = []
    for subdivisions, size in ((2, 0.3), (3, 0.15)):
        model = EllipsoidModel.from_unit_ball(
            element_size=size, subdivisions=subdivisions, num_modes=30
        )
        errors.append(float((model(values, PROTOCOL) - reference).abs().max()))
    assert errors[1] < 0.004
    assert errors[0] / errors[1] > 3.0


def test_ellipsoid_derivatives_match_finite_differences(coarse):
    values = {
        "s0": 1.0,
        "semi_axis_1": 3 * um,
        "semi_axis_2": 4 * um,
        "semi_axis_3": 5 * um,
        "intra_diffusivity": 2e-9,
        "rotation_1": 0.2,
        "rotation_2": -0.1,
        "rotation_3": 0.3,
    }
    names = ["semi_axis_1", "semi_axis_2", "semi_axis_3", "rotation_1", "rotation_3"]
    _, jac = jacobian(lambda v: coarse(v, PROTOCOL), values, names)
    for i, name in enumerate(names):
        step = 1e-5 * abs(values[name])
        plus = coarse({**values, name: values[name] + step}, PROTOCOL)
        minus = coarse({**values, name: values[name] - step}, PROTOCOL)
        central = (plus - minus) / (2 * step)
        scale = float(central.abs().max())
        torch.testing.assert_close(jac[:, i], central, rtol=0, atol=1e-5 * scale, msg=name)


def test_semi_axes_are_recovered_with_fisher_uncertainties(coarse):
    """Data from the same mesh model (so only noise separates them): each semi-axis comes
    back within 3 standard errors; the covariance is the Fisher information because the
    mesh eigen-solver has no second derivatives (reported in the message)."""
    model = EllipsoidModel(coarse.unit_nodes, coarse.elements, num_modes=20)
    truth = {
        "s0": 1.0,
        "semi_axis_1": 3 * um,
        "semi_axis_2": 4 * um,
        "semi_axis_3": 5 * um,
        "intra_diffusivity": 2e-9,
    }
    forward = model.bind(PROTOCOL)
    clean = forward({k: torch.tensor(v, dtype=F64) for k, v in truth.items()}).detach()
    data = sample_noise("gaussian", clean, 0.005, torch.Generator().manual_seed(0))
    params = model.parameters(fixed={"intra_diffusivity": 2e-9})
    result = fit(forward, data, params, sigma=0.005)
    assert "Fisher used" in result.convergence.message
    for name in ("semi_axis_1", "semi_axis_2", "semi_axis_3"):
        error = result.standard_error(name)
        assert abs(result.estimates[name] - truth[name]) < 3 * error, name
        assert error < 0.05 * truth[name]


def test_ellipsoid_errors_are_clear(coarse):
    with pytest.raises(ValueError, match="unit ball"):
        EllipsoidModel(coarse.unit_nodes * 3, coarse.elements)
    with pytest.raises(ValueError, match="extra"):
        EllipsoidModel(coarse.unit_nodes, coarse.elements, extra="zeppelin")
    with pytest.raises(KeyError, match="unknown"):
        coarse.parameters(fixed={"radius": 1e-6})
