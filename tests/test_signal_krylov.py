"""Exponential actions (KrylovExponential): derivatives against dense matrix exponentials.

The values are checked against :class:`~mf_dmri.signal.DenseExponential` in
tests/test_signal_exponential_actions.py (with a Krylov dimension of 60 and of 8).  Here
gradients through the Krylov path must agree with the gradients through the dense path for
every differentiable input (mesh vertices, radius, diffusivity, timings, gradient
amplitudes); and the choice of propagator and the settings are checked.
"""

import pytest
import torch
from propagator_cases import D, box_nodes, random_acquisition

from mf_dmri.analytic import sphere
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
from mf_dmri.signal.propagators import CUDA_DENSE_MAX_MODES, CUDA_DENSE_MAX_MODES_DIFFERENTIATED
from mf_dmri.units import ms, um


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


@pytest.mark.parametrize("differentiated", [False, True])
def test_choice_on_a_cuda_device_prefers_dense_exponentials(differentiated):
    """On a GPU the dense path is the cheapest far further (CUDA_DENSE_MAX_MODES, measured
    in benchmarks/results/gpu_signal.md); shift-and-invert is never chosen there.  Only the
    device's type is read: no GPU is needed for this test."""
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    few, many = CUDA_DENSE_MAX_MODES
    if differentiated:
        few = many = CUDA_DENSE_MAX_MODES_DIFFERENTIATED
    for pieces, limit in ((1, few), (2, few), (16, many)):
        at = choose_propagator(limit, 100, pieces, cuda, differentiated=differentiated)
        above = choose_propagator(limit + 1, 100, pieces, cuda, differentiated=differentiated)
        assert isinstance(at, DenseExponential) and isinstance(above, KrylovExponential)
    for modes in (30, 87, 200, 400):
        chosen = choose_propagator(modes, 1890, 1, cuda, differentiated=differentiated)
        assert isinstance(chosen, DenseExponential)
    # the CPU's choice at the same sizes is unchanged
    assert not isinstance(choose_propagator(200, 100, 1, cpu), DenseExponential)
    assert isinstance(choose_propagator(few, 100, 16, cpu), KrylovExponential)
    assert CUDA_DENSE_MAX_MODES_DIFFERENTIATED < CUDA_DENSE_MAX_MODES[0]  # measured crossover


def test_krylov_settings_are_checked():
    with pytest.raises(ValueError, match="tolerance must lie in"):
        KrylovExponential(tolerance=0.1)
    with pytest.raises(ValueError, match="krylov_dimension must be an integer >= 2"):
        KrylovExponential(krylov_dimension=1)
