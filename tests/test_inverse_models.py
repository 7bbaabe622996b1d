"""Parametric models: the fast kernels against the general matrix-formalism path, the
gamma-radius quadrature against closed forms and adaptive quadrature, model derivatives
against finite differences, mode-cutoff convergence, and the tensor fit."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import roots_genlaguerre
from test_inverse_helpers import shell_protocol, single_thread, small_protocol  # noqa: F401

from mf_dmri.analytic import cylinder, sphere
from mf_dmri.inverse import MODEL_CUTOFF, CylinderModel, SphereModel
from mf_dmri.inverse.initial import fit_tensor
from mf_dmri.inverse.kernels import cylinder_signal, sphere_signal
from mf_dmri.inverse.radii import gamma_volume_nodes, generalized_laguerre
from mf_dmri.sequences import Acquisition, DoublePGSE
from mf_dmri.signal import Compartment, signal
from mf_dmri.units import ms, um

pytestmark = pytest.mark.usefixtures("single_thread")
F64 = torch.float64
AXIS = torch.tensor([0.3, -0.5, 0.8], dtype=F64) / math.sqrt(0.98)


def _t(x):
    return torch.tensor(x, dtype=F64)


def _general(domain, diffusivity, protocol):
    return torch.cat(
        [signal(Compartment(domain, diffusivity), g).real for g in protocol.piece_groups()]
    )


def test_cylinder_kernel_equals_general_path():
    """Same eigen-data cutoff, so the rotated, reduced evaluation must agree to rounding."""
    protocol = small_protocol()
    radius, diffusivity, cutoff = 4 * um, 1.7e-9, 60.0
    fast = torch.cat(
        [
            cylinder_signal(g, _t(radius), AXIS, _t(diffusivity), unit_cutoff=cutoff)
            for g in protocol.piece_groups()
        ]
    )
    reference = _general(
        cylinder(radius, AXIS, max_eigenvalue=cutoff / radius**2), diffusivity, protocol
    )
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-12)


def test_sphere_kernel_equals_general_path():
    protocol = small_protocol()
    radius, diffusivity, cutoff = 6 * um, 2.0e-9, 60.0
    fast = torch.cat(
        [
            sphere_signal(g, _t(radius), _t(diffusivity), unit_cutoff=cutoff)
            for g in protocol.piece_groups()
        ]
    )
    reference = _general(sphere(radius, max_eigenvalue=cutoff / radius**2), diffusivity, protocol)
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-12)


def test_direction_changing_waveform_uses_general_path():
    """Double PGSE with orthogonal blocks: the rotation trick does not apply; the kernel
    must still give the general result."""
    waveform = DoublePGSE(5 * ms, 15 * ms, 2 * ms)
    directions = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]], [[1.0, 0, 0], [1.0, 0, 0]]], dtype=F64)
    pieces = Acquisition(waveform, directions, _t([0.2, 0.2])).pieces()
    radius = 3 * um
    fast = cylinder_signal(pieces, _t(radius), AXIS, _t(2e-9), unit_cutoff=60.0)
    reference = signal(
        Compartment(cylinder(radius, AXIS, max_eigenvalue=60 / radius**2), 2e-9), pieces
    )
    torch.testing.assert_close(fast, reference.real, rtol=0, atol=1e-12)


def test_laguerre_rule_matches_scipy():
    """Golub-Welsch in torch against scipy's roots_genlaguerre (weights normalised)."""
    nodes, weights = generalized_laguerre(20, _t(6.5))
    ref_nodes, ref_weights = roots_genlaguerre(20, 6.5)
    np.testing.assert_allclose(nodes.numpy(), ref_nodes, rtol=1e-12)
    np.testing.assert_allclose(
        weights.numpy(), ref_weights / ref_weights.sum(), rtol=1e-9, atol=1e-300
    )


def test_gamma_nodes_reproduce_closed_form_and_derivatives():
    """E(r) = exp(-a r): the volume-weighted gamma average is (1 + a theta)^-(k + 2) with
    theta = mean / k (Laplace transform of Gamma(k + 2, theta)); first and second
    derivatives in k and the mean follow from the same closed form."""
    a = 2.0e5  # [1/m]
    mean = _t(3 * um).requires_grad_(True)
    shape = _t(6.0).requires_grad_(True)

    def closed(m, k):
        return (1 + a * m / k) ** -(k + 2)

    radii, weights = gamma_volume_nodes(mean, shape, count=24)
    quadrature = (weights * torch.exp(-a * radii)).sum()
    exact = closed(mean, shape)
    assert float(quadrature.detach()) == pytest.approx(float(exact.detach()), rel=1e-10)
    grads = torch.autograd.grad(quadrature, (mean, shape), create_graph=True)
    exact_grads = torch.autograd.grad(exact, (mean, shape), create_graph=True)
    for g, e in zip(grads, exact_grads):
        assert float(g.detach()) == pytest.approx(float(e.detach()), rel=1e-9)
    (second,) = torch.autograd.grad(grads[1], shape)
    (exact_second,) = torch.autograd.grad(exact_grads[1], shape)
    assert float(second) == pytest.approx(float(exact_second), rel=1e-8)


def test_gamma_cylinder_model_matches_adaptive_quadrature():
    """The model's Gauss-Laguerre average against scipy.quad over r of r^2 p(r) E(r)."""
    protocol = shell_protocol([(200, 10, 30)], torch.tensor([[1.0, 0.0, 0.0]]), b0=0)
    pieces = protocol.piece_groups()[0]
    mean, k, diffusivity = 3 * um, 4.0, 1.8e-9
    model = CylinderModel(radius_distribution="gamma", quadrature_nodes=16, unit_cutoff=60.0)
    values = {"s0": 1.0, "mean_radius": mean, "radius_shape": k, "intra_diffusivity": diffusivity}
    ours = float(model(values, protocol)[0])
    theta = mean / k

    def integrand(r):
        density = r ** (k + 1) * math.exp(-r / theta)
        e = cylinder_signal(
            pieces, _t(r), torch.tensor([0.0, 0, 1], dtype=F64), _t(diffusivity), unit_cutoff=60.0
        )
        return density * float(e[0])

    scale = theta ** (k + 2) * math.gamma(k + 2)
    reference = (
        integrate.quad(integrand, 1e-9, 40 * theta, epsabs=0, epsrel=1e-10, limit=200)[0] / scale
    )
    assert ours == pytest.approx(reference, rel=2e-6)


MODELS = {
    "cylinder+zeppelin, fitted axis": (
        CylinderModel(axis=tuple(AXIS.tolist()), fit_axis=True, extra="zeppelin", unit_cutoff=40.0),
        {
            "radius": 3 * um,
            "axis_tilt_1": 0.1,
            "axis_tilt_2": -0.2,
            "intra_fraction": 0.6,
            "extra_parallel_diffusivity": 1.9e-9,
            "extra_perpendicular_diffusivity": 0.5e-9,
        },
    ),
    "gamma cylinder + ball": (
        CylinderModel(
            radius_distribution="gamma", extra="ball", quadrature_nodes=6, unit_cutoff=40.0
        ),
        {
            "mean_radius": 2.5 * um,
            "radius_shape": 5.0,
            "intra_fraction": 0.7,
            "extra_diffusivity": 1e-9,
        },
    ),
    "sphere + ball": (
        SphereModel(extra="ball", unit_cutoff=40.0),
        {"radius": 5 * um, "intra_fraction": 0.4, "extra_diffusivity": 2.5e-9},
    ),
}


@pytest.mark.parametrize("label", list(MODELS))
def test_model_derivatives_match_finite_differences(label):
    model, values = MODELS[label]
    values = {"s0": 1.3, "intra_diffusivity": 1.7e-9, **values}
    protocol = small_protocol()
    from mf_dmri.inverse import jacobian

    names = [n for n in values if n != "s0"]
    _, jac = jacobian(lambda v: model(v, protocol), values, names)
    for i, name in enumerate(names):
        step = 1e-5 * (abs(values[name]) or 1.0)
        plus = model({**values, name: values[name] + step}, protocol)
        minus = model({**values, name: values[name] - step}, protocol)
        central = (plus - minus) / (2 * step)
        scale = float(central.abs().max()) + 1e-300
        torch.testing.assert_close(jac[:, i], central, rtol=0, atol=2e-6 * scale, msg=name)


def test_mixed_radius_amplitude_derivative_matches_finite_differences():
    """d^2 E / (d radius d G) through the rotated kernel (protocol design differentiates
    the Jacobian with respect to the protocol)."""
    directions = torch.tensor([[0.6, 0.0, 0.8]], dtype=F64)

    def d_radius(amplitude):
        radius = _t(3.0).requires_grad_(True)
        protocol = shell_protocol([(1.0, 10, 30)], directions, b0=0)
        pieces = type(protocol)(
            protocol.pulse_duration, protocol.pulse_separation, amplitude.reshape(1), directions
        ).piece_groups()[0]
        e = cylinder_signal(
            pieces, radius * um, torch.tensor([0.0, 0, 1], dtype=F64), _t(2e-9), unit_cutoff=40.0
        )
        (g,) = torch.autograd.grad(e.sum(), radius, create_graph=True)
        return g

    amplitude = _t(0.15).requires_grad_(True)
    (mixed,) = torch.autograd.grad(d_radius(amplitude), amplitude)
    h = 1e-6
    central = (d_radius(_t(0.15 + h)) - d_radius(_t(0.15 - h))) / (2 * h)
    assert float(mixed) == pytest.approx(float(central.detach()), rel=1e-6)


@pytest.mark.parametrize("kind", ["cylinder", "sphere"])
def test_default_model_cutoff_is_converged(kind):
    """At the hardest settings the models are meant for (R = 15 um, G = 300 mT/m,
    delta/Delta = 20/30 and 15/60 ms), MODEL_CUTOFF differs from a 3x finer basis by less
    than 1e-4 of the b = 0 signal."""
    protocol = shell_protocol(
        [(300, 20, 30), (300, 15, 60), (100, 15, 60)], torch.tensor([[1.0, 0, 0.3]]), b0=0
    )
    radius = _t(15 * um)
    axis = torch.tensor([0.0, 0, 1], dtype=F64)

    def evaluate(cutoff_factor):
        if kind == "cylinder":
            cutoff = MODEL_CUTOFF["disk"] * cutoff_factor
            parts = [cylinder_signal(g, radius, axis, _t(2e-9), unit_cutoff=cutoff) for g in groups]
        else:
            cutoff = MODEL_CUTOFF["ball"] * cutoff_factor
            parts = [sphere_signal(g, radius, _t(2e-9), unit_cutoff=cutoff) for g in groups]
        return torch.cat(parts)

    groups = protocol.piece_groups()
    results = [evaluate(1.0), evaluate(3.0)]
    assert float((results[0] - results[1]).abs().max()) < 1e-4


def test_tensor_fit_recovers_fibre_axis():
    model = CylinderModel(axis=tuple(AXIS.tolist()), extra="zeppelin", unit_cutoff=40.0)
    rng = np.random.default_rng(3)
    protocol = shell_protocol(
        [(40, 10, 30), (60, 10, 30)], torch.tensor(rng.normal(size=(20, 3))), b0=2
    )
    values = {
        "s0": 1.0,
        "radius": 2 * um,
        "intra_diffusivity": 1.8e-9,
        "intra_fraction": 0.6,
        "extra_parallel_diffusivity": 1.8e-9,
        "extra_perpendicular_diffusivity": 0.4e-9,
    }
    estimate = fit_tensor(protocol, model(values, protocol), max_bvalue=2e9)
    assert abs(float(estimate.principal_axis @ AXIS)) > 0.999
    assert estimate.s0 == pytest.approx(1.0, rel=0.05)


def test_model_errors_are_clear():
    with pytest.raises(ValueError, match="extra must be"):
        CylinderModel(extra="stick")
    with pytest.raises(ValueError, match="extra must be"):
        SphereModel(extra="zeppelin")
    with pytest.raises(ValueError, match="radius_distribution"):
        CylinderModel(radius_distribution="lognormal")
    with pytest.raises(ValueError, match="non-zero 3-vector"):
        CylinderModel(axis=(0.0, 0.0, 0.0))
    with pytest.raises(KeyError, match="unknown parameters"):
        CylinderModel().parameters(fixed={"radiu": 1e-6})
    with pytest.raises(KeyError, match="missing parameter values"):
        CylinderModel()({"s0": 1.0, "radius": 1e-6}, small_protocol())
    with pytest.raises(ValueError, match="unit_cutoff"):
        CylinderModel(unit_cutoff=0.0)
    with pytest.raises(ValueError, match="at least 7"):
        fit_tensor(small_protocol(), torch.ones(26), max_bvalue=1.0)
