"""The BTPDE time-stepping solver (mf_dmri.signal.btpde) on its own:

* independent check against dense matrix exponentials of the full semi-discrete system
  (scipy.linalg.expm per piece) on a generic two-compartment operator with exchange, T2,
  unequal spin densities and a non-refocused waveform (complex signal);
* convergence in the time step at the theoretical order of each scheme (fitted slope;
  Hairer & Wanner, Solving ODEs II, 1996: backward Euler 1, Crank-Nicolson 2, 2-stage
  Radau IIA 3, 2-stage Gauss-Legendre 4);
* the stability functions are the Pade-type approximants of exp(z) of that order;
* factorisation reuse (shared zero-gradient pieces, conjugate refocused lobes, measurements
  with equal gradients), Acquisition input, normalisation, and input errors.
"""

import math

import numpy as np
import pytest
import torch
from btpde_helpers import coupled_operator, dense_reference
from helpers import pgse_pieces

from mf_dmri.sequences import PGSE, Acquisition
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal.btpde import btpde_signal, btpde_solve
from mf_dmri.signal.rational_schemes import SCHEMES, get_scheme

ORDERS = {"backward-euler": 1, "crank-nicolson": 2, "radau-iia": 3, "gauss-legendre": 4}


@pytest.fixture(scope="module")
def operator():
    return coupled_operator()


@pytest.fixture(scope="module")
def waveform():
    """A refocused PGSE (real gradients g, 0, -g) and an arbitrary non-refocused 3-piece
    waveform; pieces of 10, 20 and 10 ms so that halving the step halves every step."""
    gradients = torch.tensor(
        [
            [[0.05, 0.02, 0.0], [0.0, 0.0, 0.0], [-0.05, -0.02, 0.0]],
            [[0.03, 0.04, 0.01], [0.0, -0.02, 0.05], [0.06, 0.01, 0.0]],
        ],
        dtype=torch.float64,
    )
    return GradientPieces(torch.tensor([10e-3, 20e-3, 10e-3], dtype=torch.float64), gradients)


@pytest.fixture(scope="module")
def reference(operator, waveform):
    return dense_reference(operator, waveform)


def test_btpde_matches_dense_matrix_exponential(operator, waveform, reference):
    assert abs(reference[1].imag) > 1e-7  # the non-refocused waveform has a phase
    fine = btpde_signal(operator, waveform, time_step=10e-3 / 32, scheme="gauss-legendre")
    # Gauss-Legendre error at h = 0.3125 ms is ~ 2e-10 (fitted constant of the test below)
    np.testing.assert_allclose(fine.numpy(), reference, rtol=0, atol=2e-9)
    cn = btpde_signal(operator, waveform, time_step=10e-3 / 32)
    assert np.abs(cn.numpy() - reference).max() < 1e-4


@pytest.mark.parametrize("scheme", list(ORDERS))
def test_time_step_convergence_at_theoretical_order(operator, waveform, reference, scheme):
    steps_per_10ms = np.array([4, 8, 16, 32])
    errors = []
    for count in steps_per_10ms:
        value = btpde_signal(operator, waveform, time_step=10e-3 / count, scheme=scheme)
        errors.append(np.abs(value.numpy() - reference).max())
    slope = -np.polyfit(np.log(steps_per_10ms), np.log(errors), 1)[0]
    assert abs(slope - ORDERS[scheme]) < 0.15, (scheme, errors, slope)
    assert get_scheme(scheme).order == ORDERS[scheme]


@pytest.mark.parametrize("name", list(SCHEMES))
def test_stability_function_approximates_exp_at_its_order(name):
    scheme = SCHEMES[name]
    z = np.array([0.02, 0.01]) * np.exp(0.7j)
    errors = np.abs(scheme.stability(z) - np.exp(z))
    # local error C z^(p+1): halving z divides it by 2^(p+1)
    assert np.log2(errors[0] / errors[1]) == pytest.approx(scheme.order + 1, abs=0.05)
    # A-stability: |R| <= 1 on the left half-plane (sampled), including far out
    left = -np.logspace(-3, 6, 50)[:, None] * np.exp(1j * np.linspace(-1.5, 1.5, 7))[None]
    assert np.abs(scheme.stability(left)).max() <= 1 + 1e-12


def test_factorisations_are_reused(operator):
    amplitudes = [0.04, 0.04, 0.07]
    pieces = pgse_pieces(10e-3, 30e-3, amplitudes, (1.0, 0.0, 0.0))
    cn = btpde_solve(operator, pieces, time_step=1e-3)
    # CN: one per distinct lobe gradient (the -g lobe is the conjugate) + one for g = 0
    assert cn.num_factorizations == 3
    assert cn.num_steps == 40
    gauss = btpde_solve(operator, pieces, time_step=1e-3, scheme="gauss-legendre")
    # two complex-conjugate poles: 2 per lobe gradient, 1 shared by both at g = 0
    assert gauss.num_factorizations == 5
    assert cn.signal[0] == cn.signal[1]
    assert gauss.factorization_time <= gauss.wall_time


def test_conjugate_factorisation_matches_a_fresh_one(operator):
    """Perturbing the refocused lobe by 1e-12 T/m forces new factorisations; the signal
    must not change beyond that perturbation."""
    exact = pgse_pieces(10e-3, 30e-3, [0.05], (0.6, 0.8, 0.0))
    perturbed = GradientPieces(
        exact.durations, exact.gradients + torch.tensor([0.0, 0.0, 1e-12])[None, None]
    )
    reused = btpde_solve(operator, exact, time_step=2e-3, scheme="radau-iia")
    fresh = btpde_solve(operator, perturbed, time_step=2e-3, scheme="radau-iia")
    assert fresh.num_factorizations > reused.num_factorizations
    assert abs(complex(reused.signal[0] - fresh.signal[0])) < 1e-10


def test_acquisition_input_and_normalisation(operator):
    acquisition = Acquisition(
        PGSE(10e-3, 30e-3), torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([0.05])
    )
    from_acquisition = btpde_signal(operator, acquisition, time_step=1e-3)
    from_pieces = btpde_signal(operator, acquisition.pieces(), time_step=1e-3)
    assert torch.equal(from_acquisition, from_pieces)
    raw = btpde_signal(operator, acquisition, time_step=1e-3, normalize=False)
    np.testing.assert_allclose(raw.numpy(), from_pieces.numpy() * operator.initial_signal())
    # without gradient only T2 decays the signal; the exchange conserves spins but mixes the
    # two compartments (T2 = 80 ms and 50 ms), so the signal lies between the two decays
    still = btpde_signal(operator, pgse_pieces(10e-3, 30e-3, [0.0]), time_step=1e-3)
    decays = np.exp(-40e-3 / np.array([0.08, 0.05]))
    spins = operator.mass @ operator.initial
    weights = np.array([spins[operator.compartment == c].sum() for c in (0, 1)])
    assert decays[1] < still.real.item() < decays[0]
    assert still.real.item() == pytest.approx((weights * decays).sum() / weights.sum(), rel=1e-2)


@pytest.mark.parametrize("bad", [0.0, -1e-3, math.nan, math.inf])
def test_bad_time_step_is_rejected(operator, bad):
    with pytest.raises(ValueError, match="time_step"):
        btpde_signal(operator, pgse_pieces(10e-3, 30e-3, [0.05]), time_step=bad)


def test_bad_inputs_are_rejected(operator):
    pieces = pgse_pieces(10e-3, 30e-3, [0.05])
    with pytest.raises(TypeError, match="time_step"):
        btpde_signal(operator, pieces, time_step="1 ms")
    with pytest.raises(ValueError, match="unknown time-stepping scheme"):
        btpde_signal(operator, pieces, time_step=1e-3, scheme="rk4")
    with pytest.raises(TypeError, match="BlochTorreyOperator"):
        btpde_signal(operator.mass, pieces, time_step=1e-3)
    with pytest.raises(TypeError, match="Acquisition or GradientPieces"):
        btpde_signal(operator, np.zeros((1, 3, 3)), time_step=1e-3)
