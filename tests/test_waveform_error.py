"""The error of propagating a smooth waveform (OGSE) as constant pieces, and its bar.

Reference: the Bloch-Torrey equation of a slab of width L projected on its Neumann modes
cos(n pi x / L) (moments in closed form, written here: no package code), integrated in time
under the continuous cosine waveform by scipy's ``solve_ivp`` (DOP853, rtol 1e-12), at two
mode counts.  The matrix formalism on pieces converges to it at second order in the piece
length, and ``signal_with_error`` refines the pieces until the waveform part of its bar is
within a quarter of the tolerance: its bar covers the distance to the reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import mf_dmri as mf
from mf_dmri.signal.waveform_error import coarse_waveform_error
from mf_dmri.units import ms, s_per_mm2, um

GAMMA = 2.6752218744e8
WIDTH, DIFFUSIVITY = 20 * um, 2e-9
DELTA, SEPARATION, PERIODS = 40 * ms, 50 * ms, 2
BVALUES = (1000 * s_per_mm2, 3000 * s_per_mm2)


def _slab_moments(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (count,) [1/m^2] and first moments A_mn = int x phi_m phi_n dx / L [m] of
    the Neumann modes phi_0 = 1, phi_n = sqrt(2) cos(n pi x / L) on [0, L]."""
    n = np.arange(count)
    values = (n * math.pi / WIDTH) ** 2
    moments = np.zeros((count, count))
    moments[0, 0] = WIDTH / 2
    for m in range(count):
        for k in range(count):
            if m == k or (m + k) % 2 == 0:
                continue
            if 0 in (m, k):
                j = m + k
                moments[m, k] = -2 * math.sqrt(2) * WIDTH / (j * math.pi) ** 2
            else:
                moments[m, k] = -4 * WIDTH * (m**2 + k**2) / (math.pi**2 * (m**2 - k**2) ** 2)
    for m in range(1, count):
        moments[m, m] = WIDTH / 2
    return values, moments


def _amplitude(bvalue: float) -> float:
    """Gradient amplitude [T/m] of the cosine OGSE (pulse_duration DELTA, PERIODS periods)
    with b-value ``bvalue`` [s/m^2]: b = gamma^2 G^2 delta^3 / (4 pi^2 n^2)."""
    return math.sqrt(bvalue * 4 * math.pi**2 * PERIODS**2 / (GAMMA**2 * DELTA**3))


def _reference(bvalue: float, count: int) -> complex:
    """Slab signal under the continuous cosine waveform, ``count`` modes (ODE in time)."""
    values, moments = _slab_moments(count)
    amplitude = _amplitude(bvalue)
    rates = DIFFUSIVITY * values
    frequency = 2 * math.pi * PERIODS / DELTA

    def gradient(t: float) -> float:
        if t < DELTA:
            return amplitude * math.cos(frequency * t)
        if SEPARATION <= t < SEPARATION + DELTA:
            return -amplitude * math.cos(frequency * (t - SEPARATION))
        return 0.0

    def rhs(t, m):
        return -(rates * m) - 1j * GAMMA * gradient(t) * (moments @ m)

    start = np.zeros(count, dtype=complex)
    start[0] = 1.0
    state = start
    for a, b in ((0, DELTA), (DELTA, SEPARATION), (SEPARATION, SEPARATION + DELTA)):
        state = solve_ivp(rhs, (a, b), state, method="DOP853", rtol=1e-12, atol=1e-14).y[:, -1]
    return complex(state[0])


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    coarse = np.array([_reference(b, 30) for b in BVALUES])
    fine = np.array([_reference(b, 40) for b in BVALUES])
    assert np.abs(fine - coarse).max() < 1e-7  # converged in the modes
    return fine


def _acquisition() -> mf.Acquisition:
    waveform = mf.OGSE(DELTA, SEPARATION, PERIODS, "cos")
    directions = torch.tensor([[1.0, 0.0, 0.0]] * len(BVALUES), dtype=torch.float64)
    return mf.Acquisition.from_bvalues(
        waveform, torch.tensor(BVALUES, dtype=torch.float64), directions
    )


def _compartment(cutoff_modes: int = 40) -> mf.Compartment:
    max_eigenvalue = ((cutoff_modes - 0.5) * math.pi / WIDTH) ** 2
    return mf.Compartment(mf.slab(WIDTH, max_eigenvalue=max_eigenvalue), DIFFUSIVITY)


def test_the_pieces_converge_to_the_continuous_waveform_at_second_order(reference):
    acquisition, compartment = _acquisition(), _compartment()
    period = DELTA / PERIODS
    errors = []
    for per_period in (16, 32, 64, 128):
        value = mf.signal(compartment, acquisition, time_step=period / per_period)
        errors.append(np.abs(value.numpy() - reference).max())
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((rates > 1.8) & (rates < 2.2)), (errors, rates)
    # the default pieces (128 per period) miss a 1e-4 tolerance here
    assert errors[-1] > 1e-4


def test_the_bar_covers_the_continuous_waveform(reference):
    result = mf.signal_with_error(_compartment(), _acquisition())
    error = np.abs(result.signal.numpy() - reference)
    assert result.within_tolerance
    assert np.all(error <= result.error_bar.numpy()), (error, result.error_bar)
    # the waveform part is what covers it: without it the bar would not
    waveform = result.waveform_error.numpy()
    assert np.all(waveform > 0) and waveform.max() <= 0.25 * result.tolerance
    default = mf.signal(_compartment(), _acquisition()).numpy()
    assert np.abs(default - reference).max() > (result.error_bar - result.waveform_error).max()


def test_a_piecewise_constant_waveform_has_no_waveform_error():
    acquisition = mf.Acquisition.from_bvalues(
        mf.PGSE(10 * ms, 30 * ms),
        torch.tensor(BVALUES, dtype=torch.float64),
        torch.tensor([[1.0, 0.0, 0.0]] * len(BVALUES), dtype=torch.float64),
    )
    result = mf.signal_with_error(_compartment(), acquisition)
    assert torch.equal(result.waveform_error, torch.zeros(len(BVALUES), dtype=torch.float64))
    assert coarse_waveform_error(lambda step: 1 / 0, acquisition) is None


def test_the_bound_of_the_default_pieces_covers_them(reference):
    acquisition, compartment = _acquisition(), _compartment()
    bound = coarse_waveform_error(
        lambda step: mf.signal(compartment, acquisition, time_step=step), acquisition
    ).numpy()
    default = mf.signal(compartment, acquisition).numpy()
    assert np.all(np.abs(default - reference) <= bound), (np.abs(default - reference), bound)


def test_a_sweep_keeps_the_default_pieces_and_bounds_their_error(reference):
    """An OGSE sweep stores the signal of its a-priori cutoff and the default pieces; its
    bar holds both the distance to the checked signal and the waveform error of the
    pieces (2 |E_h - E_h/2|), and covers the continuous-waveform reference (without either
    term it would not: the sweep's signal is 2.0e-4 from the converged one at b = 1000)."""
    from sweep_helpers import MemorySink

    from mf_dmri.sweep import (
        AcquisitionBlock,
        GeometrySpec,
        SweepSpec,
        TissueSpec,
        Values,
        run_sweep,
    )

    spec = SweepSpec(
        geometries=(GeometrySpec("slab", {"width": Values((WIDTH,))}, {"axis": (1, 0, 0)}),),
        tissue=TissueSpec({"diffusivity": Values((DIFFUSIVITY,))}),
        acquisitions=(
            AcquisitionBlock(
                "ogse", (DELTA,), (SEPARATION,), BVALUES, ((1.0, 0.0, 0.0),), (PERIODS,)
            ),
        ),
        chunk_rows=1,
    )
    sink = MemorySink()
    run_sweep(spec, sink)
    signals, bars = sink.signals[0][0], sink.bars[0][0]
    error = np.abs(signals - reference)
    assert np.all(error > 1e-5) and np.all(error <= bars), (error, bars)
