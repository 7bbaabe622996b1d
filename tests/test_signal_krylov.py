"""Exponential actions (KrylovExponential) against dense matrix exponentials.

The independent reference is :class:`~mf_dmri.signal.DenseExponential` (scaling and squaring
with Pade, itself checked against scipy's expm in tests/test_signal_interfaces.py): on a
generic FEM basis (no symmetry: complex arithmetic, no reduction), analytic bases (exact
reductions, real arithmetic, degenerate spectra without reduction) and a coupled permeable
basis (read-out != start), for PGSE in random directions, OGSE, double PGSE and a sampled
three-channel waveform, the values must agree to the propagators' tolerances, also with a
small Krylov dimension that forces many controlled steps per piece.  Gradients through the
Krylov path must agree with the gradients through the dense path for every differentiable
input (mesh vertices, radius, diffusivity, timings, gradient amplitudes).
"""

import pytest
import torch
from propagator_cases import (
    AGREE,
    ANALYTIC_DOMAINS,
    WAVEFORMS,
    D,
    box_nodes,
    coupled_permeable_case,
    random_acquisition,
)

from mf_dmri.analytic import ball_basis, sphere
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
from mf_dmri.units import ms, um


@pytest.mark.parametrize("name", sorted(WAVEFORMS))
@pytest.mark.parametrize("dimension", [60, 8])
def test_krylov_matches_dense_on_a_generic_fem_basis(fem_basis, name, dimension):
    pieces = WAVEFORMS[name]().pieces(1 * ms)
    krylov = KrylovExponential(krylov_dimension=dimension)
    got = factor_signal(fem_basis, torch.tensor(D), pieces, propagator=krylov)
    expected = factor_signal(fem_basis, torch.tensor(D), pieces, propagator=DenseExponential())
    assert fem_basis.num_modes > 60
    assert float((got - expected).abs().max()) < AGREE
    assert float((expected - 1).abs().max()) > 5e-3  # the gradients do attenuate


def test_time_course_matches_dense(fem_basis):
    pieces = WAVEFORMS["sampled"]().pieces(1 * ms)
    args = (fem_basis, torch.tensor(D), pieces)
    got = factor_signal(*args, time_course=True, propagator=KrylovExponential(krylov_dimension=8))
    expected = factor_signal(*args, time_course=True, propagator=DenseExponential())
    assert got.shape == expected.shape == (3, pieces.durations.numel())
    assert float((got - expected).abs().max()) < AGREE


@pytest.mark.parametrize("domain", ANALYTIC_DOMAINS)
def test_krylov_matches_dense_on_analytic_bases(domain):
    acquisition = random_acquisition(PGSE(10 * ms, 30 * ms), 0.15, count=5)
    cell = Compartment(domain(), D)
    got = signal(cell, acquisition, propagator=KrylovExponential(krylov_dimension=8))
    expected = signal(cell, acquisition, propagator=DenseExponential())
    assert float((got - expected).abs().max()) < AGREE


def test_krylov_matches_dense_at_a_degenerate_spectrum():
    """The full ball basis (2l + 1-fold clusters), unreduced, random directions."""
    basis = ball_basis(5 * um, max_eigenvalue=60 / (5 * um) ** 2)
    pieces = random_acquisition(PGSE(10 * ms, 30 * ms), 0.15, count=4).pieces()
    args = (basis, torch.tensor(D), pieces)
    got = factor_signal(*args, reduce=False, propagator=KrylovExponential(krylov_dimension=8))
    expected = factor_signal(*args, reduce=False, propagator=DenseExponential())
    assert basis.num_modes > 40
    assert float((got - expected).abs().max()) < AGREE


def test_krylov_matches_dense_on_a_coupled_permeable_basis():
    basis, acquisition = coupled_permeable_case()
    got = signal(basis, acquisition, propagator=KrylovExponential(krylov_dimension=8))
    expected = signal(basis, acquisition, propagator=DenseExponential())
    assert float((got - expected).abs().max()) < AGREE


def _gradients(propagator, build):
    leaves, value = build(propagator)
    return torch.autograd.grad(value, leaves)


def _sphere_signal(propagator):
    radius = torch.tensor(5 * um, dtype=torch.float64, requires_grad=True)
    diffusivity = torch.tensor(D, dtype=torch.float64, requires_grad=True)
    delta = torch.tensor(10 * ms, dtype=torch.float64, requires_grad=True)
    amplitude = torch.tensor([0.1, 0.2], dtype=torch.float64, requires_grad=True)
    directions = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]])
    acquisition = Acquisition(PGSE(delta, 30 * ms), directions, amplitude)
    cell = Compartment(sphere(radius, max_eigenvalue=100 / (5 * um) ** 2), diffusivity)
    value = signal(cell, acquisition, propagator=propagator)
    return (radius, diffusivity, delta, amplitude), (value.real**2).sum()


def _mesh_signal(propagator):
    nodes, elements = box_nodes(4)
    nodes = nodes.clone().requires_grad_(True)
    basis = differentiable_mesh_eigenbasis(nodes, elements, num_modes=30)
    pieces = random_acquisition(PGSE(10 * ms, 30 * ms), 0.2, count=3).pieces()
    value = factor_signal(basis, torch.tensor(D), pieces, propagator=propagator)
    return (nodes,), (value.real**2).sum() + value.imag.sum()


@pytest.mark.parametrize("build", [_sphere_signal, _mesh_signal])
def test_gradients_through_krylov_match_dense(build):
    got = _gradients(KrylovExponential(krylov_dimension=8), build)
    expected = _gradients(DenseExponential(), build)
    for g, e in zip(got, expected, strict=True):
        scale = float(e.abs().max())
        assert scale > 0
        assert float((g - e).abs().max()) < 1e-7 * scale


def test_choose_propagator_by_size():
    small = choose_propagator(20, 100, 1, torch.device("cpu"))
    large = choose_propagator(500, 100, 1, torch.device("cpu"))
    assert isinstance(small, DenseExponential) and isinstance(large, KrylovExponential)
    assert isinstance(large, Propagator)


def test_krylov_settings_are_checked():
    with pytest.raises(ValueError, match="tolerance must lie in"):
        KrylovExponential(tolerance=0.1)
    with pytest.raises(ValueError, match="krylov_dimension must be an integer >= 2"):
        KrylovExponential(krylov_dimension=1)
