"""The signal layer's two interfaces: propagators passed as objects, and SignalResult.

The dense propagator is checked against scipy's independent matrix exponential
(Al-Mohy and Higham 2009) on a random generator, and the interim error bar of
``signal_with_error`` against a converged analytic sphere (a much larger cutoff).
"""

import numpy as np
import pytest
import scipy.linalg
import torch

from mf_dmri.analytic import sphere
from mf_dmri.sequences import PGSE, multi_shell
from mf_dmri.signal import (
    Compartment,
    DenseExponential,
    Propagator,
    SignalResult,
    choose_propagator,
    signal,
    signal_with_error,
)
from mf_dmri.signal.propagators import PiecePlan, PropagationBatch
from mf_dmri.units import ms, s_per_mm2, um, um2_per_ms


def test_dense_propagator_matches_scipy_expm():
    rng = np.random.default_rng(0)
    size = 12
    eigenvalues = np.sort(rng.uniform(0, 4e11, size))
    eigenvalues[0] = 0.0
    moment = rng.normal(size=(size, size)) * 1e-6
    moment = moment + moment.T
    start = np.zeros(size)
    start[0] = 1.0
    gradient, tau, gamma, diffusivity = 0.05, 5e-3, 2.675e8, 2e-9
    batch = PropagationBatch(
        eigenvalues=torch.tensor(eigenvalues)[None],
        moments=torch.tensor(moment)[None, None],
        initial=torch.tensor(start)[None],
        readout=torch.tensor(start)[None],
        diffusivity=torch.tensor(diffusivity, dtype=torch.float64),
        durations=torch.tensor([tau, tau], dtype=torch.float64),
        gradients=torch.tensor([[[gradient], [-gradient]]], dtype=torch.float64),
        plans=(PiecePlan("new", 0), PiecePlan("conj", 0)),
        gamma=gamma,
    )
    value = DenseExponential().propagate(batch)
    generator = np.diag(diffusivity * eigenvalues) + 1j * gamma * gradient * moment
    expected = start @ (
        scipy.linalg.expm(-tau * generator.conj()) @ scipy.linalg.expm(-tau * generator) @ start
    )
    assert isinstance(DenseExponential(), Propagator)
    assert abs(complex(value[0]) - expected) < DenseExponential().tolerance


def test_default_propagator_is_a_propagator():
    chosen = choose_propagator(50, 100, 2, torch.device("cpu"))
    assert isinstance(chosen, Propagator)


def _acquisition():
    return multi_shell(
        PGSE(pulse_duration=10 * ms, pulse_separation=30 * ms),
        [0, 1000 * s_per_mm2, 3000 * s_per_mm2],
        num_directions=2,
    )


def test_signal_with_error_covers_the_converged_sphere():
    """A fixed basis (explicit cutoff) is reported at the finest level of its ladder (here
    every mode: it holds less than 8 x the a-priori cutoff); the bar covers the error
    against the closed forms at a 15x larger cutoff, and the signal is that of the basis
    truncated at the reported cutoff."""
    acq = _acquisition()
    cell = Compartment(sphere(5 * um, max_eigenvalue=200 / (5 * um) ** 2), 2 * um2_per_ms)
    result = signal_with_error(cell, acq, tolerance=1e-3)
    converged = signal(
        Compartment(sphere(5 * um, max_eigenvalue=3000 / (5 * um) ** 2), 2 * um2_per_ms), acq
    )
    true_error = (result.signal - converged).abs()
    assert bool((true_error <= result.error_bar).all())
    assert result.within_tolerance and result.num_modes[0] == cell.domain.factors[0].num_modes
    truncated = sphere(5 * um, max_eigenvalue=result.max_eigenvalues[0] * (1 + 1e-9))
    same = signal(Compartment(truncated, 2 * um2_per_ms), acq, propagator=DenseExponential())
    assert torch.allclose(result.signal, same, rtol=0, atol=1e-14)


def test_signal_result_refuses_inconsistent_fields():
    value = torch.ones(3, dtype=torch.complex128)
    zero = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="truncation_error must be finite and non-negative"):
        SignalResult(value, -torch.ones(3, dtype=torch.float64), zero, zero, 1e-3, (5,), (1.0,))
    with pytest.raises(ValueError, match="discretisation_error must be a float64 tensor"):
        SignalResult(value, zero, torch.zeros(2, dtype=torch.float64), zero, 1e-3, (5,), (1.0,))
    ok = SignalResult(value, zero, zero + 2e-3, zero, 1e-3, (5,), (1.0,))
    assert not ok.within_tolerance and ok.max_error_bar == pytest.approx(2e-3)
