"""Fisher information and Cramer-Rao bounds against finite-difference Jacobians, protocol
gradients against finite differences, protocol design, and protocol/limit validation."""

import math

import numpy as np
import pytest
import torch
from test_inverse_helpers import fibre_directions, shell_protocol, single_thread, small_protocol  # noqa: F401

from mf_dmri.inverse import (
    CylinderModel,
    HardwareLimits,
    PGSEProtocol,
    as_piece_groups,
    cramer_rao_bound,
    fisher_information,
    rician_information,
)
from mf_dmri.inverse.design import _to_protocol, _to_variables, optimise_protocol
from mf_dmri.sequences import PGSE, Acquisition
from mf_dmri.units import GAMMA_PROTON, ms, um

pytestmark = pytest.mark.usefixtures("single_thread")
F64 = torch.float64
MODEL = CylinderModel(axis=(0.2, 0.1, 1.0), extra="ball", unit_cutoff=30.0)
VALUES = {
    "s0": 1.0,
    "radius": 3 * um,
    "intra_diffusivity": 1.8e-9,
    "intra_fraction": 0.7,
    "extra_diffusivity": 1.2e-9,
}


def _fd_jacobian(values, protocol, rel_step=1e-5):
    columns = []
    for name in values:
        step = rel_step * abs(values[name])
        plus = MODEL({**values, name: values[name] + step}, protocol)
        minus = MODEL({**values, name: values[name] - step}, protocol)
        columns.append((plus - minus) / (2 * step))
    return torch.stack(columns, 1), MODEL(values, protocol)


@pytest.mark.parametrize("likelihood", ["gaussian", "rician"])
def test_fisher_information_matches_finite_difference_jacobian(likelihood):
    protocol, sigma = small_protocol(), 0.02
    info = fisher_information(MODEL, VALUES, protocol, sigma, likelihood=likelihood)
    jac, predicted = _fd_jacobian(VALUES, protocol)
    weight = torch.full_like(predicted, 1 / sigma**2)
    if likelihood == "rician":
        weight = rician_information(predicted, sigma)[:, 0, 0]
    expected = jac.T @ (weight[:, None] * jac)
    scale = torch.sqrt(torch.outer(expected.diagonal(), expected.diagonal()))
    torch.testing.assert_close(info / scale, expected / scale, rtol=0, atol=1e-6)


def test_cramer_rao_bound_is_the_inverse_information():
    protocol = small_protocol()
    bound = cramer_rao_bound(MODEL, VALUES, protocol, 0.02)
    info = fisher_information(MODEL, VALUES, protocol, 0.02)
    s = torch.tensor([abs(v) for v in VALUES.values()], dtype=F64)
    identity = (bound.covariance / torch.outer(s, s)) @ (info * torch.outer(s, s))
    torch.testing.assert_close(identity, torch.eye(len(VALUES), dtype=F64), rtol=0, atol=1e-8)
    assert float(bound.relative("radius")) == pytest.approx(
        float(bound.standard_deviation("radius")) / VALUES["radius"]
    )


def test_sigma_block_of_gaussian_information():
    """Gaussian noise: sigma is orthogonal to the signal parameters, I_sigma = 2 M / sigma^2."""
    protocol, sigma = small_protocol(), 0.02
    bound = cramer_rao_bound(MODEL, VALUES, protocol, sigma, include_sigma=True)
    count = protocol.num_measurements
    assert float(bound.information[-1, -1]) == pytest.approx(2 * count / sigma**2, rel=1e-12)
    assert float(bound.information[-1, :-1].abs().max()) == 0.0
    assert float(bound.standard_deviation("sigma")) == pytest.approx(sigma / math.sqrt(2 * count))


def test_singular_information_raises_with_advice():
    protocol = shell_protocol([(100, 10, 30)], fibre_directions(0, 0, 3), b0=1)
    model = CylinderModel(unit_cutoff=30.0)
    with pytest.raises(ValueError, match="singular.*fix one of them"):
        cramer_rao_bound(
            model, {"s0": 1.0, "radius": 3 * um, "intra_diffusivity": 2e-9}, protocol, 0.01
        )


LIMITS = HardwareLimits(
    max_gradient=0.3, max_echo_time=80 * ms, echo_time_overhead=20 * ms, min_pulse_duration=2 * ms
)
SMALL_AXON = {"s0": 1.0, "radius": 2 * um, "intra_diffusivity": 1.8e-9}


def _design_protocol():
    directions = fibre_directions(3, 0, 1)
    return PGSEProtocol(
        [5 * ms, 5 * ms], [40 * ms, 20 * ms], [0.05, 0.1], directions, b0_measurements=2
    )


def _log_crb(variables, template):
    protocol = _to_protocol(variables, template, LIMITS)
    model = CylinderModel(unit_cutoff=30.0)
    bound = cramer_rao_bound(model, SMALL_AXON, protocol, 0.01, create_graph=True)
    return 2 * torch.log(bound.standard_deviation("radius"))


def test_design_gradient_matches_finite_differences():
    """d log CRB / d (timing, amplitude variables): third derivatives of the signal through
    reverse-mode autograd, against central differences."""
    template = _design_protocol()
    variables = _to_variables(template, LIMITS).requires_grad_(True)
    (gradient,) = torch.autograd.grad(_log_crb(variables, template), variables)
    step = 1e-5
    for index in np.ndindex(*variables.shape):
        shifted = [variables.detach().clone() for _ in range(2)]
        shifted[0][index] += step
        shifted[1][index] -= step
        central = (_log_crb(shifted[0], template) - _log_crb(shifted[1], template)) / (2 * step)
        assert float(gradient[index]) == pytest.approx(
            float(central.detach()), rel=1e-5, abs=1e-7
        ), index


def test_optimise_protocol_lowers_the_radius_bound_within_limits():
    design = optimise_protocol(
        CylinderModel(unit_cutoff=30.0),
        SMALL_AXON,
        _design_protocol(),
        0.01,
        LIMITS,
        iterations=8,
        learning_rate=0.3,
    )
    assert design.improvement > 3.0  # measured: 24 after 8 steps from this poor start
    optimised = design.optimised
    assert LIMITS.violations(optimised) == []
    assert bool((optimised.pulse_duration <= optimised.pulse_separation).all())
    recomputed = cramer_rao_bound(CylinderModel(unit_cutoff=30.0), SMALL_AXON, optimised, 0.01)
    assert float(recomputed.standard_deviation("radius")) == pytest.approx(
        design.optimised_bounds[0], rel=1e-10
    )
    assert design.history[0] >= min(design.history)


def test_design_rejects_bad_requests():
    model = CylinderModel(unit_cutoff=30.0)
    strong = PGSEProtocol([5 * ms], [40 * ms], [0.5], fibre_directions(2, 0, 1))
    with pytest.raises(ValueError, match="breaks the hardware limits.*gradient amplitude"):
        optimise_protocol(model, SMALL_AXON, strong, 0.01, LIMITS)
    with pytest.raises(KeyError, match="target"):
        optimise_protocol(model, SMALL_AXON, _design_protocol(), 0.01, LIMITS, target="length")
    with pytest.raises(TypeError, match="PGSEProtocol"):
        optimise_protocol(model, SMALL_AXON, _design_protocol().piece_groups()[0], 0.01, LIMITS)
    with pytest.raises(ValueError, match="no room"):
        HardwareLimits(max_gradient=0.3, max_echo_time=10 * ms, echo_time_overhead=9 * ms)
    with pytest.raises(ValueError, match="max_gradient"):
        HardwareLimits(max_gradient=-1.0, max_echo_time=0.1)


def test_protocol_bvalues_match_stejskal_tanner_and_the_sequences_layer():
    """b = gamma^2 G^2 delta^2 (Delta - delta/3) (Stejskal and Tanner 1965) and the same
    signal groups as an Acquisition of mf_dmri.sequences.PGSE."""
    directions = torch.tensor([[1.0, 0, 0], [0, 0.6, 0.8]], dtype=F64)
    protocol = PGSEProtocol([10 * ms], [30 * ms], [0.2], directions)
    expected = GAMMA_PROTON**2 * 0.2**2 * (10 * ms) ** 2 * (30 * ms - 10 * ms / 3)
    torch.testing.assert_close(
        protocol.bvalues(), torch.full((2,), expected, dtype=F64), rtol=1e-12, atol=0
    )
    acquisition = Acquisition(PGSE(10 * ms, 30 * ms), directions, torch.full((2,), 0.2, dtype=F64))
    ours = MODEL(VALUES, protocol)
    theirs = MODEL(VALUES, acquisition)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-14)
    round_trip = PGSEProtocol.from_bvalues([expected], [10 * ms], [30 * ms], directions)
    assert float(round_trip.gradient_amplitude[0]) == pytest.approx(0.2, rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pulse_duration": [0.03]}, "Delta.*>= pulse_duration"),
        ({"gradient_amplitude": [-0.1]}, "non-negative"),
        ({"pulse_separation": [0.03, 0.04]}, "one entry per shell"),
        ({"directions": [[0.0, 0.0, 0.0]]}, "non-zero vectors"),
        ({"b0_measurements": -1}, "b0_measurements"),
        ({"pulse_duration": [math.nan]}, "NaN"),
    ],
)
def test_bad_protocols_raise(kwargs, message):
    base = {
        "pulse_duration": [0.01],
        "pulse_separation": [0.02],
        "gradient_amplitude": [0.1],
        "directions": [[1.0, 0, 0]],
    }
    with pytest.raises(ValueError, match=message):
        PGSEProtocol(**{**base, **kwargs})


def test_unknown_protocol_type_raises():
    with pytest.raises(TypeError, match="protocol must be"):
        as_piece_groups("pgse.txt")
