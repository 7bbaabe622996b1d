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

import numpy as np
import pytest
import torch
from permeable_helpers import split_rectangle
from skfem import MeshTet

from mf_dmri.analytic import ball_basis, cylinder, sphere
from mf_dmri.fem import (
    PermeableParameters,
    mesh_eigenbasis,
    permeable_eigenbasis,
    permeable_mesh,
)
from mf_dmri.fem.differentiable import differentiable_mesh_eigenbasis
from mf_dmri.sequences import OGSE, PGSE, Acquisition, DoublePGSE, SampledWaveform
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

D = 2e-9
AGREE = 1e-9  # both tolerances (1e-10, 1e-11) with room for the dense path's round-off


def _box_nodes(points: int) -> tuple[torch.Tensor, np.ndarray]:
    """A 6 x 5 x 4 um box with interior nodes moved at random: a generic spectrum."""
    mesh = MeshTet.init_tensor(*(np.linspace(0, s, points) for s in (6e-6, 5e-6, 4e-6)))
    nodes = mesh.p.T.copy()
    inside = np.ones(nodes.shape[0], dtype=bool)
    inside[mesh.boundary_nodes()] = False
    shift = 0.15 * 1e-6 * np.random.default_rng(0).standard_normal(nodes.shape)
    nodes[inside] += shift[inside]
    return torch.tensor(nodes), mesh.t.T.copy()


@pytest.fixture(scope="module")
def fem_basis():
    nodes, elements = _box_nodes(8)
    return mesh_eigenbasis(nodes, elements, max_eigenvalue=1.5e13, order=1)


def _random_acquisition(waveform, top: float, count: int = 6, seed: int = 0) -> Acquisition:
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    amplitudes = rng.uniform(0.3 * top, top, size=count)
    if waveform.num_channels == 2:  # double PGSE: a second, random direction per measurement
        second = rng.normal(size=(count, 3))
        second /= np.linalg.norm(second, axis=1, keepdims=True)
        directions = np.stack([directions, second], axis=1)
    return Acquisition(waveform, torch.tensor(directions), torch.tensor(amplitudes))


def _sampled_three_channels() -> Acquisition:
    samples = np.random.default_rng(2).normal(size=(10, 3))
    waveform = SampledWaveform(torch.tensor(samples), 2 * ms)
    rotations = torch.eye(3, dtype=torch.float64).expand(3, 3, 3).clone()
    rotations[1] = torch.linalg.qr(torch.tensor(np.random.default_rng(3).normal(size=(3, 3))))[0]
    # random samples do not refocus: the gradient-echo signal with its phase is compared
    return Acquisition(
        waveform, rotations, torch.tensor([0.02, 0.05, 0.08]), allow_unrefocused=True
    )


WAVEFORMS = {
    "pgse": lambda: _random_acquisition(PGSE(10 * ms, 30 * ms), 0.2),
    "ogse": lambda: _random_acquisition(OGSE(15 * ms, 20 * ms, 2), 0.3, count=3),
    "double_pgse": lambda: _random_acquisition(DoublePGSE(5 * ms, 15 * ms, 5 * ms), 0.15),
    "sampled": _sampled_three_channels,
}


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


@pytest.mark.parametrize(
    "domain",
    [
        # reduced, real arithmetic (parity)
        lambda: sphere(5 * um, max_eigenvalue=100 / (5 * um) ** 2),
        lambda: cylinder(4 * um),  # disk x free axis
    ],
)
def test_krylov_matches_dense_on_analytic_bases(domain):
    acquisition = _random_acquisition(PGSE(10 * ms, 30 * ms), 0.15, count=5)
    cell = Compartment(domain(), D)
    got = signal(cell, acquisition, propagator=KrylovExponential(krylov_dimension=8))
    expected = signal(cell, acquisition, propagator=DenseExponential())
    assert float((got - expected).abs().max()) < AGREE


def test_krylov_matches_dense_at_a_degenerate_spectrum():
    """The full ball basis (2l + 1-fold clusters), unreduced, random directions."""
    basis = ball_basis(5 * um, max_eigenvalue=60 / (5 * um) ** 2)
    pieces = _random_acquisition(PGSE(10 * ms, 30 * ms), 0.15, count=4).pieces()
    args = (basis, torch.tensor(D), pieces)
    got = factor_signal(*args, reduce=False, propagator=KrylovExponential(krylov_dimension=8))
    expected = factor_signal(*args, reduce=False, propagator=DenseExponential())
    assert basis.num_modes > 40
    assert float((got - expected).abs().max()) < AGREE


def test_krylov_matches_dense_on_a_coupled_permeable_basis():
    nodes, elements, labels = split_rectangle(8 * um, (2 * um, 3 * um), 8, (3, 4))
    parameters = PermeableParameters(
        diffusivity=(2e-9, 1e-9),
        permeability=1e-5,
        t2=(80 * ms, 50 * ms),
        spin_density=(1.0, 0.8),
    )
    mesh = permeable_mesh(nodes, elements, element_labels=labels)
    basis = permeable_eigenbasis(mesh, parameters, num_modes=40)
    directions = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 1.0, 0.0]])
    acquisition = Acquisition(PGSE(8 * ms, 20 * ms), directions, torch.tensor([0.1, 0.2, 0.15]))
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
    nodes, elements = _box_nodes(4)
    nodes = nodes.clone().requires_grad_(True)
    basis = differentiable_mesh_eigenbasis(nodes, elements, num_modes=30)
    pieces = _random_acquisition(PGSE(10 * ms, 30 * ms), 0.2, count=3).pieces()
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
