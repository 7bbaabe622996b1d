"""Both Krylov propagators (KrylovExponential, ShiftInvertExponential) against dense matrix
exponentials.

The independent reference is :class:`~mf_dmri.signal.DenseExponential` (scaling and squaring
with Pade, itself checked against scipy's expm in tests/test_signal_interfaces.py): on a
generic FEM basis (no symmetry: complex arithmetic, no reduction, stiffness coupling),
analytic bases (exact reductions, real arithmetic under parity), a degenerate spectrum
without reduction and a coupled permeable basis (read-out != start), for PGSE in random
directions, OGSE, double PGSE and a sampled three-channel waveform, the values must agree
to the propagators' tolerances; the polynomial Krylov propagator also with a small Krylov
dimension (8) that forces many controlled steps per piece.  Their derivatives are tested in
tests/test_signal_krylov.py and tests/test_signal_shift_invert.py.
"""

import pytest
import torch
from permeable_helpers import split_rectangle
from propagator_cases import AGREE, WAVEFORMS, D, random_acquisition

from mf_dmri.analytic import ball_basis, cylinder, sphere
from mf_dmri.fem import PermeableParameters, permeable_eigenbasis, permeable_mesh
from mf_dmri.sequences import PGSE, Acquisition
from mf_dmri.signal import Compartment, DenseExponential, KrylovExponential, signal
from mf_dmri.signal.propagation import factor_signal
from mf_dmri.signal.shift_invert import ShiftInvertExponential
from mf_dmri.units import ms, um

#: The propagators under test; "krylov_8" forces many controlled steps per piece.
PROPAGATORS = {
    "krylov_60": KrylovExponential(krylov_dimension=60),
    "krylov_8": KrylovExponential(krylov_dimension=8),
    "shift_invert": ShiftInvertExponential(),
}
#: The propagators of the other cases: the polynomial Krylov one at dimension 8 only.
SMALL_CASE_PROPAGATORS = ("krylov_8", "shift_invert")


@pytest.mark.parametrize("name", sorted(WAVEFORMS))
@pytest.mark.parametrize("propagator", sorted(PROPAGATORS))
def test_matches_dense_on_a_generic_fem_basis(fem_basis, name, propagator):
    pieces = WAVEFORMS[name]().pieces(1 * ms)
    got = factor_signal(fem_basis, torch.tensor(D), pieces, propagator=PROPAGATORS[propagator])
    expected = factor_signal(fem_basis, torch.tensor(D), pieces, propagator=DenseExponential())
    assert fem_basis.num_modes > 60
    assert float((got - expected).abs().max()) < AGREE
    assert float((expected - 1).abs().max()) > 5e-3  # the gradients do attenuate


@pytest.mark.parametrize("propagator", SMALL_CASE_PROPAGATORS)
def test_time_course_matches_dense(fem_basis, propagator):
    pieces = WAVEFORMS["sampled"]().pieces(1 * ms)
    args = (fem_basis, torch.tensor(D), pieces)
    got = factor_signal(*args, time_course=True, propagator=PROPAGATORS[propagator])
    expected = factor_signal(*args, time_course=True, propagator=DenseExponential())
    assert got.shape == expected.shape == (3, pieces.durations.numel())
    assert float((got - expected).abs().max()) < AGREE


@pytest.mark.parametrize(
    "domain",
    [
        lambda: sphere(5 * um, max_eigenvalue=100 / (5 * um) ** 2),  # reduced, parity
        lambda: cylinder(4 * um),  # disk x free axis
    ],
)
@pytest.mark.parametrize("propagator", SMALL_CASE_PROPAGATORS)
def test_matches_dense_on_analytic_bases(domain, propagator):
    acquisition = random_acquisition(PGSE(10 * ms, 30 * ms), 0.15, count=5)
    cell = Compartment(domain(), D)
    got = signal(cell, acquisition, propagator=PROPAGATORS[propagator])
    expected = signal(cell, acquisition, propagator=DenseExponential())
    assert float((got - expected).abs().max()) < AGREE


@pytest.mark.parametrize("propagator", SMALL_CASE_PROPAGATORS)
def test_matches_dense_at_a_degenerate_spectrum(propagator):
    """The full ball basis (2l + 1-fold clusters), unreduced, random directions."""
    basis = ball_basis(5 * um, max_eigenvalue=60 / (5 * um) ** 2)
    pieces = random_acquisition(PGSE(10 * ms, 30 * ms), 0.15, count=4).pieces()
    args = (basis, torch.tensor(D), pieces)
    got = factor_signal(*args, reduce=False, propagator=PROPAGATORS[propagator])
    expected = factor_signal(*args, reduce=False, propagator=DenseExponential())
    assert basis.num_modes > 40
    assert float((got - expected).abs().max()) < AGREE


@pytest.mark.parametrize("propagator", SMALL_CASE_PROPAGATORS)
def test_matches_dense_on_a_coupled_permeable_basis(propagator):
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
    got = signal(basis, acquisition, propagator=PROPAGATORS[propagator])
    expected = signal(basis, acquisition, propagator=DenseExponential())
    assert float((got - expected).abs().max()) < AGREE
