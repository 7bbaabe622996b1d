"""Autograd derivatives of the analytic matrix-formalism signal against central finite
differences (relative 1e-6), and no NaN anywhere, including b = 0 and g = 0."""

import numpy as np
import pytest
import torch
from helpers import pgse_pieces

from mf_dmri.analytic import cylinder, slab, sphere
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal import Compartment, signal
from mf_dmri.units import ms, um

BUILDERS = {
    "slab": lambda r: slab(2 * r),
    "cylinder": lambda r: cylinder(r, (1.0, 2.0, 2.0)),
    "sphere": sphere,
}
BASE = {"radius": 4 * um, "diffusivity": 1.7e-9, "delta": 8 * ms, "Delta": 25 * ms}
AMPLITUDES = [0.0, 0.04, 0.09]


def _forward(params, amplitudes, shape):
    pieces = pgse_pieces(params["delta"], params["Delta"], amplitudes)
    comp = Compartment(BUILDERS[shape](params["radius"]), params["diffusivity"])
    return signal(comp, pieces).real


def _central_difference(shape, name, amplitudes, rel_step=1e-4):
    # the signal carries ~1e-12 round-off from the scaling and squaring of the matrix
    # exponential: a relative step of 1e-5 amplifies it to ~1e-6 of the derivative
    step = BASE[name] * rel_step
    plus = {**BASE, name: BASE[name] + step}
    minus = {**BASE, name: BASE[name] - step}
    return (_forward(plus, amplitudes, shape) - _forward(minus, amplitudes, shape)) / (2 * step)


@pytest.mark.parametrize("shape", list(BUILDERS))
@pytest.mark.parametrize("name", list(BASE))
def test_parameter_gradients_match_finite_differences(shape, name):
    params = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=(k == name)) for k, v in BASE.items()
    }
    values = _forward(params, AMPLITUDES, shape)
    jacobian = torch.stack(
        [torch.autograd.grad(v, params[name], retain_graph=True)[0] for v in values]
    )
    expected = _central_difference(shape, name, AMPLITUDES)
    assert torch.isfinite(jacobian).all()
    scale = expected.abs().max()
    torch.testing.assert_close(jacobian, expected, rtol=0, atol=1e-6 * float(scale))


@pytest.mark.parametrize("shape", list(BUILDERS))
def test_amplitude_gradient_including_zero(shape):
    amplitudes = torch.tensor(AMPLITUDES, dtype=torch.float64, requires_grad=True)
    params = {k: torch.tensor(v, dtype=torch.float64) for k, v in BASE.items()}
    values = _forward(params, amplitudes, shape)
    grad = torch.autograd.grad(values.sum(), amplitudes)[0]
    assert torch.isfinite(grad).all()
    assert abs(float(grad[0])) < 1e-12  # the signal is even in G
    step = 2e-5
    for i in (1, 2):
        shifted = [list(AMPLITUDES), list(AMPLITUDES)]
        shifted[0][i] += step
        shifted[1][i] -= step
        fd = _forward(params, shifted[0], shape)[i] - _forward(params, shifted[1], shape)[i]
        assert float(grad[i]) == pytest.approx(float(fd) / (2 * step), rel=1e-6)


def test_waveform_sample_gradients():
    rng = np.random.default_rng(0)
    samples = torch.tensor(rng.normal(size=(2, 5, 3)) * 0.03, requires_grad=True)
    durations = torch.full((5,), 3 * ms, dtype=torch.float64)
    comp = Compartment(sphere(4 * um, max_eigenvalue=60 / (4 * um) ** 2), 2e-9)

    def total(gradients):
        return signal(comp, GradientPieces(durations, gradients)).abs().sum()

    grad = torch.autograd.grad(total(samples), samples)[0]
    direction = torch.tensor(rng.normal(size=(2, 5, 3)))
    h = 1e-7
    fd = total(samples.detach() + h * direction) - total(samples.detach() - h * direction)
    assert float((grad * direction).sum()) == pytest.approx(float(fd) / (2 * h), rel=1e-6)


def test_no_nan_at_zero_gradient():
    radius = torch.tensor(3 * um, requires_grad=True)
    diffusivity = torch.tensor(2e-9, requires_grad=True)
    amplitudes = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    pieces = pgse_pieces(5 * ms, 20 * ms, amplitudes)
    out = signal(Compartment(cylinder(radius), diffusivity), pieces)
    out.real.sum().backward()
    for tensor in (radius, diffusivity, amplitudes):
        assert torch.isfinite(tensor.grad).all()
    torch.testing.assert_close(out.real, torch.ones(2, dtype=torch.float64))


def test_compartment_weights_and_t2_gradient():
    """Two compartments add with weights fraction x density x exp(-TE/T2), normalised by
    sum fraction x density; d/dT2 matches a central difference."""
    pieces = pgse_pieces(10 * ms, 30 * ms, [0.0, 0.06])
    echo_time = 40 * ms
    t2 = torch.tensor(70 * ms, dtype=torch.float64, requires_grad=True)
    axon = Compartment(cylinder(3 * um), 1.5e-9, t2=t2, spin_density=0.8, volume_fraction=0.6)
    cell = Compartment(sphere(6 * um), 2.0e-9, t2=90 * ms, volume_fraction=0.4)
    total = signal([axon, cell], pieces)
    w_axon = 0.6 * 0.8
    w_cell = 0.4
    e_axon = signal(axon, pieces) / np.exp(-echo_time / float(t2))
    e_cell = signal(cell, pieces) / np.exp(-echo_time / (90 * ms))
    expected = (
        w_axon * np.exp(-echo_time / float(t2)) * e_axon
        + w_cell * np.exp(-echo_time / (90 * ms)) * e_cell
    ) / (w_axon + w_cell)
    torch.testing.assert_close(total, expected.detach(), rtol=1e-12, atol=0)
    grad = torch.autograd.grad(total.real.sum(), t2)[0]
    h = 1e-6

    def at(value):
        comp = Compartment(
            cylinder(3 * um), 1.5e-9, t2=value, spin_density=0.8, volume_fraction=0.6
        )
        return signal([comp, cell], pieces).real.sum()

    fd = (at(70 * ms + h) - at(70 * ms - h)) / (2 * h)
    assert float(grad) == pytest.approx(float(fd), rel=1e-6)


def test_mixed_compartment_kinds_need_volume_fractions():
    """An infinite cylinder's volume is its cross-section times 1 m: weighting it against a
    sphere's volume is refused; compartments of one kind are weighted by their volumes."""
    pieces = pgse_pieces(10 * ms, 30 * ms, [0.0, 0.06])
    axon = Compartment(cylinder(3 * um), 1.5e-9)
    cell = Compartment(sphere(6 * um), 2.0e-9)
    with pytest.raises(ValueError, match="give each Compartment a volume_fraction"):
        signal([axon, cell], pieces)
    with pytest.raises(ValueError, match="to every compartment or to none"):
        signal([axon, Compartment(sphere(6 * um), 2.0e-9, volume_fraction=1.0)], pieces)
    small = Compartment(sphere(3 * um), 2.0e-9)
    both = signal([small, cell], pieces)
    v_small, v_cell = (4 / 3 * np.pi * r**3 for r in (3 * um, 6 * um))
    expected = (v_small * signal(small, pieces) + v_cell * signal(cell, pieces)) / (
        v_small + v_cell
    )
    torch.testing.assert_close(both, expected, rtol=1e-12, atol=0)
