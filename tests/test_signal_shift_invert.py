"""Shift-and-invert Krylov propagation (ShiftInvertExponential) against dense exponentials.

The independent reference is :class:`~mf_dmri.signal.DenseExponential` (scaling and squaring,
checked against scipy's expm in tests/test_signal_interfaces.py); the values on a generic
FEM basis, analytic bases, a degenerate spectrum and a coupled permeable basis are checked
in tests/test_signal_exponential_actions.py, here a tighter tolerance and a basis of more
than 128 modes after a thread-count change.  Its hand-written adjoint (the solves' backward)
is checked against the dense path's autograd for every differentiable input, against
central finite differences of the signal itself (vertices, diffusivity, pulse timings), and
to second order (Hessian-vector products, including at measurements with zero gradient in
the batch).
"""

import numpy as np
import pytest
import torch
from permeable_helpers import split_rectangle
from propagator_cases import WAVEFORMS, D, box_nodes, random_acquisition

from mf_dmri.analytic import sphere
from mf_dmri.fem import PermeableParameters, permeable_eigenbasis, permeable_mesh
from mf_dmri.fem.differentiable import differentiable_mesh_eigenbasis
from mf_dmri.sequences import PGSE, Acquisition
from mf_dmri.signal import (
    Compartment,
    DenseExponential,
    KrylovExponential,
    Propagator,
    choose_propagator,
    signal,
)
from mf_dmri.signal.propagation import factor_signal
from mf_dmri.signal.shift_invert import ShiftInvertExponential
from mf_dmri.units import ms, um


def test_tighter_tolerance_is_met(fem_basis):
    """A tolerance of 1e-13 still agrees with the dense path to its round-off."""
    pieces = WAVEFORMS["pgse"]().pieces()
    tight = ShiftInvertExponential(tolerance=1e-13)
    got = factor_signal(fem_basis, torch.tensor(D), pieces, propagator=tight)
    expected = factor_signal(fem_basis, torch.tensor(D), pieces, propagator=DenseExponential())
    assert float((got - expected).abs().max()) < 1e-11


def _sphere_signal(propagator, leaves=None):
    radius, diffusivity, delta, amplitude = leaves or (
        torch.tensor(value, dtype=torch.float64, requires_grad=True)
        for value in (5 * um, D, 10 * ms, [0.1, 0.0, 0.2])
    )
    directions = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.6, 0.8]])
    acquisition = Acquisition(PGSE(delta, 30 * ms), directions, amplitude)
    cell = Compartment(sphere(radius, max_eigenvalue=100 / (5 * um) ** 2), diffusivity)
    value = signal(cell, acquisition, propagator=propagator)
    return (radius, diffusivity, delta, amplitude), (value.real**2).sum()


def _mesh_signal(propagator, leaves=None):
    """Vertices, diffusivity and both PGSE timings of a generic mesh (stiffness coupling)."""
    nodes, elements = box_nodes(4)
    if leaves is None:
        leaves = (nodes.clone().requires_grad_(True),) + tuple(
            torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (D, 10 * ms, 30 * ms)
        )
    vertices, diffusivity, delta, big_delta = leaves
    basis = differentiable_mesh_eigenbasis(vertices, elements, num_modes=30)
    pieces = random_acquisition(PGSE(delta, big_delta), 0.2, count=3).pieces()
    value = factor_signal(basis, diffusivity, pieces, propagator=propagator)
    return leaves, (value.real**2).sum() + value.imag.sum()


@pytest.mark.parametrize("build", [_sphere_signal, _mesh_signal])
def test_gradients_match_dense(build):
    leaves, value = build(ShiftInvertExponential())
    got = torch.autograd.grad(value, leaves)
    leaves, value = build(DenseExponential())
    expected = torch.autograd.grad(value, leaves)
    for g, e in zip(got, expected, strict=True):
        scale = float(e.abs().max())
        assert scale > 0
        assert float((g - e).abs().max()) < 1e-7 * scale


@pytest.mark.parametrize("build", [_sphere_signal, _mesh_signal])
def test_gradients_match_finite_differences(build):
    """The directional derivative along a random direction of every input at once."""
    propagator = ShiftInvertExponential(tolerance=1e-13)
    leaves, value = build(propagator)
    grads = torch.autograd.grad(value, leaves)
    rng = np.random.default_rng(5)
    # entries that are exactly zero (an amplitude) stay: they cannot move below zero
    directions = [
        torch.tensor(rng.normal(size=x.shape)) * x.detach().abs().max() * (x.detach() != 0)
        for x in leaves
    ]
    step = 1e-5
    predicted = sum(float((g * d).sum()) for g, d in zip(grads, directions, strict=True))

    def shifted(sign):
        moved = tuple(x.detach() + sign * step * d for x, d in zip(leaves, directions, strict=True))
        return float(build(propagator, moved)[1])

    difference = (shifted(1) - shifted(-1)) / (2 * step)
    assert abs(difference - predicted) < 1e-6 * abs(predicted)


def _hessian_along_values(propagator, amplitudes):
    """H x of the sphere signal's loss (double backward through the adjoint solves), and the
    central difference of its gradient along x (x = the values of the inputs)."""
    base = (5 * um, D, 10 * ms, amplitudes)

    def leaves(factor):
        return tuple(
            torch.tensor(v, dtype=torch.float64).mul(factor).requires_grad_(True) for v in base
        )

    inputs, value = _sphere_signal(propagator, leaves(1.0))
    grads = torch.autograd.grad(value, inputs, create_graph=True)
    probe = sum((g * x.detach()).sum() for g, x in zip(grads, inputs, strict=True))
    product = torch.autograd.grad(probe, inputs)
    step = 1e-5
    plus = torch.autograd.grad(*_sphere_signal(propagator, leaves(1 + step))[::-1])
    minus = torch.autograd.grad(*_sphere_signal(propagator, leaves(1 - step))[::-1])
    difference = [(a - b) / (2 * step) for a, b in zip(plus, minus, strict=True)]
    return product, difference


def test_second_derivatives_match_finite_differences_and_dense():
    got, difference = _hessian_along_values(ShiftInvertExponential(1e-13), [0.1, 0.05, 0.2])
    expected, _ = _hessian_along_values(DenseExponential(), [0.1, 0.05, 0.2])
    for g, f, e in zip(got, difference, expected, strict=True):
        scale = float(e.abs().max())
        assert scale > 0
        assert float((g - f).abs().max()) < 1e-6 * scale
        assert float((g - e).abs().max()) < 1e-6 * scale


def test_hessian_at_a_zero_amplitude_matches_dense():
    """A zero gradient in a differentiated batch makes the Krylov space exactly invariant
    (its second derivatives along g would be lost): the batch is propagated densely."""

    def hessian(propagator):
        amplitude = torch.tensor([0.1, 0.0, 0.2], dtype=torch.float64, requires_grad=True)
        directions = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.6, 0.8]])
        acquisition = Acquisition(PGSE(10 * ms, 30 * ms), directions, amplitude)
        cell = Compartment(sphere(5 * um, max_eigenvalue=100 / (5 * um) ** 2), D)
        value = signal(cell, acquisition, propagator=propagator).real.sum()
        (grad,) = torch.autograd.grad(value, amplitude, create_graph=True)
        return torch.autograd.grad(grad[1], amplitude)[0]

    got, expected = hessian(ShiftInvertExponential()), hessian(DenseExponential())
    assert float(expected[1]) < 0  # -b'' D-like curvature at g = 0
    assert float((got - expected).abs().max()) < 1e-9 * float(expected.abs().max())


def test_settings_are_checked(fem_basis):
    assert isinstance(ShiftInvertExponential(), Propagator)
    with pytest.raises(ValueError, match="tolerance must lie in"):
        ShiftInvertExponential(tolerance=0.1)
    with pytest.raises(ValueError, match="shift must lie in"):
        ShiftInvertExponential(shift=0.0)
    with pytest.raises(ValueError, match="max_dimension must be an integer >= 8"):
        ShiftInvertExponential(max_dimension=4)
    pieces = WAVEFORMS["pgse"]().pieces()
    starved = ShiftInvertExponential(tolerance=1e-15, max_dimension=8)
    with pytest.raises(RuntimeError, match="raise max_dimension"):
        factor_signal(fem_basis, torch.tensor(D), pieces, propagator=starved)


def test_choice_by_size_waveform_and_derivatives():
    cpu = torch.device("cpu")
    assert isinstance(choose_propagator(87, 1890, 1, cpu), ShiftInvertExponential)
    assert isinstance(choose_propagator(50, 100, 1, cpu), DenseExponential)
    chosen = choose_propagator(50, 100, 1, cpu, differentiated=True)
    assert isinstance(chosen, ShiftInvertExponential)
    assert isinstance(choose_propagator(87, 100, 16, cpu, differentiated=True), KrylovExponential)
    assert isinstance(choose_propagator(1000, 100, 1, cpu), KrylovExponential)


def test_choice_probes_shift_invert_on_the_hardest_waveform(fem_basis):
    """Forward only, shift-and-invert is kept where it reaches its tolerance within the
    probe's vectors (the generic 88-mode box at 0.2 T/m) and replaced by the Krylov steps
    where it does not (a 330 um slab at b = 20,000 s/mm^2, 151 modes: over 128 vectors);
    both choices agree with the dense exponential."""
    from mf_dmri.analytic import slab
    from mf_dmri.signal.propagation import planned_propagator, prepare_factor
    from mf_dmri.signal.propagators import SHIFT_INVERT_PROBE_DIMENSION
    from mf_dmri.units import s_per_mm2, um2_per_ms

    length, rate = 330 * um, torch.tensor(1 * um2_per_ms, dtype=torch.float64)
    wide = slab(length, normal=(1.0, 0.0, 0.0), max_eigenvalue=(150 * np.pi / length) ** 2)
    wide = wide.factors[0]
    bvalues = torch.tensor([6000.0, 20000.0]) * s_per_mm2
    strong = Acquisition.from_bvalues(PGSE(20 * ms, 50 * ms), bvalues, torch.eye(3)[:2])
    cases = (
        (fem_basis, WAVEFORMS["pgse"]().pieces(), ShiftInvertExponential),
        (wide, strong.pieces(), KrylovExponential),
    )
    for basis, pieces, expected in cases:
        assert basis.num_modes > max(80, SHIFT_INVERT_PROBE_DIMENSION)
        plan = prepare_factor(basis, pieces)
        assert isinstance(
            choose_propagator(basis.num_modes, 2, 1, rate.device), ShiftInvertExponential
        )
        assert isinstance(planned_propagator(plan, 1, rates=rate), expected)
        got = factor_signal(basis, rate, pieces)
        dense = factor_signal(basis, rate, pieces, propagator=DenseExponential())
        assert float((got - dense).abs().max()) < 1e-9


def test_choice_is_probed_when_derivatives_are_taken(fem_basis):
    """With a derivative in D the probe runs too (on the navis P2 basis truncated to 297
    modes, unprobed shift-and-invert took 46 s forward + 31 s backward against 1.0 + 2.3 s
    for the Krylov steps): on the 330 um slab at b = 20,000 s/mm^2 the Krylov steps (151
    modes) or the dense exponential (61 modes: the size rule without shift-and-invert) are
    taken, on the generic box shift-and-invert stays; every value and dE/dD agrees with
    the dense exponential."""
    from mf_dmri.analytic import slab
    from mf_dmri.signal.propagation import planned_propagator, prepare_factor
    from mf_dmri.units import s_per_mm2, um2_per_ms

    length = 330 * um
    bvalues = torch.tensor([6000.0, 20000.0]) * s_per_mm2
    strong = Acquisition.from_bvalues(PGSE(20 * ms, 50 * ms), bvalues, torch.eye(3)[:2])
    cases = [(fem_basis, WAVEFORMS["pgse"]().pieces(), ShiftInvertExponential)]
    for modes, expected in ((150, KrylovExponential), (60, DenseExponential)):
        wide = slab(length, normal=(1.0, 0.0, 0.0), max_eigenvalue=(modes * np.pi / length) ** 2)
        cases.append((wide.factors[0], strong.pieces(), expected))
    for basis, pieces, expected in cases:
        assert 30 <= basis.num_modes <= 400  # shift-and-invert by size, with derivatives
        rate = torch.tensor(1 * um2_per_ms, dtype=torch.float64, requires_grad=True)
        assert isinstance(
            planned_propagator(prepare_factor(basis, pieces), 1, rates=rate), expected
        )
        values, slopes = [], []
        for propagator in (None, DenseExponential()):
            got = factor_signal(basis, rate, pieces, propagator=propagator)
            (slope,) = torch.autograd.grad(got.real.sum(), rate)
            values.append(got.detach())
            slopes.append(float(slope))
        assert float((values[0] - values[1]).abs().max()) < 1e-9
        assert abs(slopes[0] - slopes[1]) <= 1e-7 * abs(slopes[1])


def test_coupled_choice_probes_shift_invert():
    """The coupled (permeable) path probes the same way: on a 171-mode two-compartment
    rectangle (10 um) shift-and-invert stays at 0.01 T/m and gives way to the Krylov steps
    at 1 T/m (PGSE 20/50 ms); both agree with the dense exponential."""
    from mf_dmri.signal.coupled import coupled_propagator

    nodes, elements, labels = split_rectangle(10e-6, (2e-6, 3e-6), 20, (4, 6))
    mesh = permeable_mesh(nodes, elements, element_labels=labels)
    params = PermeableParameters((1e-9, 2.5e-9), permeability=1e-5, t2=(0.04, 0.09))
    basis = permeable_eigenbasis(mesh, params, max_rate=1e5)
    direction = torch.tensor([[1.0, 1.0, 0.0]]) / 2**0.5
    for amplitude, expected in ((0.01, ShiftInvertExponential), (1.0, KrylovExponential)):
        acquisition = Acquisition(PGSE(20 * ms, 50 * ms), direction, torch.tensor([amplitude]))
        chosen = coupled_propagator(basis, acquisition.pieces())
        assert isinstance(chosen, expected)
        got = signal(basis, acquisition)
        dense = signal(basis, acquisition, propagator=DenseExponential())
        assert float((got - dense).abs().max()) < 1e-9


def test_agrees_with_dense_after_a_thread_count_change():
    """torch 2.13's batched CPU LU breaks (invalid pivots, wrong factors) for L > 128 once
    the thread count was changed in the process; the factors are taken one matrix at a
    time, so a 171-mode coupled basis still matches the dense path."""
    nodes, elements, labels = split_rectangle(10e-6, (2e-6, 3e-6), 20, (4, 6))
    mesh = permeable_mesh(nodes, elements, element_labels=labels)
    params = PermeableParameters((1e-9, 2.5e-9), permeability=0.0, t2=(0.04, 0.09))
    basis = permeable_eigenbasis(mesh, params, max_rate=1e5)
    assert basis.num_modes > 128
    acquisition = Acquisition(
        PGSE(5e-3, 20e-3), torch.tensor([[1.0, 1.0, 0.0]] * 2) / 2**0.5, torch.tensor([0.1, 0.2])
    )
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        torch.set_num_threads(max(previous, 2))
        got = signal(basis, acquisition, propagator=ShiftInvertExponential())
        expected = signal(basis, acquisition, propagator=DenseExponential())
    finally:
        torch.set_num_threads(previous)
    assert float((got - expected).abs().max()) < 1e-9


def test_default_dimension_reaches_the_tolerance_where_128_vectors_do_not():
    """A 330 um slab at b = 20,000 s/mm^2 (D = 1 um^2/ms, PGSE 20/50 ms): with at most 128
    Krylov vectors the action does not converge (an error, as the coverage study met it);
    the default may use up to every mode and agrees with the dense exponential."""
    from mf_dmri.analytic import slab
    from mf_dmri.signal import Compartment, signal_with_error
    from mf_dmri.units import s_per_mm2, um2_per_ms

    compartment = Compartment(slab(330 * um, normal=(1.0, 0.0, 0.0)), diffusivity=1 * um2_per_ms)
    bvalues = torch.tensor([6000.0, 20000.0]) * s_per_mm2
    acq = Acquisition.from_bvalues(PGSE(20 * ms, 50 * ms), bvalues, torch.eye(3)[:1].repeat(2, 1))
    with pytest.raises(RuntimeError, match="raise max_dimension"):
        signal_with_error(compartment, acq, propagator=ShiftInvertExponential(max_dimension=128))
    got = signal_with_error(compartment, acq, propagator=ShiftInvertExponential())
    dense = signal_with_error(compartment, acq, propagator=DenseExponential())
    assert got.num_modes == dense.num_modes and max(got.num_modes) > 128
    assert float((got.signal - dense.signal).abs().max()) < 1e-9
    assert float(dense.signal.real.min()) > 1e-3  # not a vanishing signal
