"""The Gaussian-phase estimate of the modes left out, and the a-priori cutoff built on it
(mf_dmri/signal/gaussian_tail.py, mf_dmri/signal/cutoff.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import mf_dmri as mf
from mf_dmri.signal.cutoff import DEFAULT_TOLERANCE, factor_apriori_cutoff
from mf_dmri.signal.gaussian_tail import dephasing_spectrum, tail_errors
from mf_dmri.signal.propagation import factor_signal
from mf_dmri.units import GAMMA_PROTON, ms, s_per_mm2, um, um2_per_ms


def _pgse_spectrum_closed_form(rate, delta, big_delta, gradient):
    """F(r) of a PGSE pair of amplitude G [rad/(m s)] (the Gaussian-phase kernel of
    Stepisnik 1993 for one mode of rate r), integrated by hand:
    2 G^2 [2 delta / r - (2 + e^{-r(Delta-delta)} - 2 e^{-r delta} - 2 e^{-r Delta}
    + e^{-r(Delta+delta)}) / r^2]."""
    e = math.exp
    bracket = (
        2.0
        + e(-rate * (big_delta - delta))
        - 2.0 * e(-rate * delta)
        - 2.0 * e(-rate * big_delta)
        + e(-rate * (big_delta + delta))
    )
    return 2.0 * gradient**2 * (2.0 * delta / rate - bracket / rate**2)


def test_dephasing_spectrum_of_a_pgse_matches_its_closed_form():
    delta, big_delta, gradient = 3 * ms, 20 * ms, 2.0e5
    durations = torch.tensor([delta, big_delta - delta, delta], dtype=torch.float64)
    local = torch.tensor([[[gradient], [0.0], [-gradient]]], dtype=torch.float64)
    rates = torch.tensor([0.3, 3.0, 30.0, 300.0, 3e3, 3e5], dtype=torch.float64)
    spectrum = dephasing_spectrum(local, durations, rates)[0]
    expected = [_pgse_spectrum_closed_form(r, delta, big_delta, gradient) for r in rates]
    torch.testing.assert_close(
        spectrum, torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=0
    )
    # r -> 0: |q(T)|^2 = 0 for a refocused pair; r -> inf: 2 int G^2 dt / r
    assert float(dephasing_spectrum(local, durations, torch.zeros(1, dtype=torch.float64))) == 0
    assert spectrum[-1] == pytest.approx(2 * gradient**2 * 2 * delta / 3e5, rel=3e-3)


def test_dephasing_spectrum_of_any_waveform_matches_a_double_integral():
    """A random two-axis waveform of 7 pieces against the double integral on a fine grid."""
    rng = np.random.default_rng(3)
    durations = rng.uniform(0.5, 3.0, 7) * ms
    local = rng.normal(size=(1, 7, 2)) * 1e5
    rates = np.array([0.5, 50.0, 800.0])
    spectrum = dephasing_spectrum(
        torch.from_numpy(local), torch.from_numpy(durations), torch.from_numpy(rates)
    )[0].numpy()
    # midpoints of 500 equal steps in each piece
    steps = np.repeat(durations / 500, 500)
    times = np.cumsum(steps) - steps / 2
    field = np.repeat(local[0], 500, axis=0)  # (T, 2)
    gram = field @ field.T
    for rate, value in zip(rates, spectrum):
        kernel = np.exp(-rate * np.abs(times[:, None] - times[None, :]))
        integral = float(steps @ (gram * kernel) @ steps)
        assert value == pytest.approx(integral, rel=1e-3)


@pytest.mark.parametrize("big_delta", [1.5 * ms, 40 * ms])
def test_tail_estimate_of_an_interval_matches_its_mode_sum(big_delta):
    """On an interval of length L = 2R the weights of x are B_n = 8 L^2 / (n pi)^4 on the
    odd cosine modes (two integrations by parts): the estimate is the mode sum
    1/2 sum_{k_n R > K} B_n F(D k_n^2) to a few per cent at large K."""
    radius, diffusivity, delta = 4 * um, 1 * um2_per_ms, 1 * ms
    acquisition = mf.Acquisition.from_bvalues(
        mf.PGSE(delta, big_delta), [1000 * s_per_mm2], [[1.0, 0.0, 0.0]]
    )
    pieces = acquisition.pieces()
    axes = torch.eye(3, dtype=torch.float64)[:1]
    units, errors = tail_errors(pieces, axes, radius, diffusivity, 8.0)
    length = 2 * radius
    local = GAMMA_PROTON * pieces.gradients @ axes.T
    for unit in (16.0, 32.0, 64.0):
        index = int(np.argmin(np.abs(units - unit)))
        modes = np.arange(1, 40001, 2)
        wavenumbers = modes * math.pi / length
        kept = wavenumbers * radius > units[index]
        weights = 8 * length**2 / (modes[kept] * math.pi) ** 4
        spectrum = dephasing_spectrum(
            local, pieces.durations, torch.from_numpy(diffusivity * wavenumbers[kept] ** 2)
        )[0].numpy()
        exact = 0.5 * float((weights * spectrum).sum())
        assert errors[index] == pytest.approx(exact, rel=0.12)


def _axial(factor, unit_cutoff, radius):
    return factor.source.basis((unit_cutoff / radius) ** 2, factor.axes, axial=True)


@pytest.mark.parametrize(
    "shape, radius, waveform, bvalues",
    [
        ("ball", 5.0, mf.PGSE(1 * ms, 100 * ms), [1000, 3000, 10000]),
        ("disk", 10.0, mf.PGSE(1 * ms, 100 * ms), [1000, 3000, 10000]),
        ("ball", 4.29, mf.OGSE(13.6 * ms, 25.5 * ms, num_periods=2, kind="cos"), [300, 1000]),
    ],
)
def test_apriori_cutoff_meets_the_tolerance_where_the_damping_rule_did_not(
    shape, radius, waveform, bvalues
):
    """Narrow pulses (an outside probe: 1.8e-4 and 1.4e-4 against the default 1e-4 with
    the damping rule alone) and a slow cos-OGSE (2e-3): the cutoff of ``mf.signal`` is
    now within the tolerance of a reference with twice its K (the truncation error
    falls like K^-5 here, so the reference is 30x closer)."""
    radius *= um
    domain = mf.sphere(radius) if shape == "ball" else mf.cylinder(radius)
    (factor,) = domain.factors
    diffusivity = (0.3 if isinstance(waveform, mf.OGSE) else 0.5) * um2_per_ms
    acquisition = mf.Acquisition.from_bvalues(
        waveform, [b * s_per_mm2 for b in bvalues], [[1.0, 0.0, 0.0]] * len(bvalues)
    )
    pieces = acquisition.pieces()
    tolerance = DEFAULT_TOLERANCE["analytic"]
    unit = radius * math.sqrt(
        factor_apriori_cutoff(factor, diffusivity, pieces, tolerance, standalone=True)
    )
    value = mf.signal(mf.Compartment(domain, diffusivity), pieces)
    reference = factor_signal(_axial(factor, 2 * unit, radius), diffusivity, pieces)
    assert float((value - reference).abs().max()) < tolerance


def test_apriori_cutoff_meets_the_tolerance_for_a_double_pgse_of_two_directions():
    """A waveform of two directions (perpendicular double PGSE, 2 ms pulses) takes the
    general path of the spectrum (every measurement, every axis); the damping rule alone
    gave 1.5e-4 here."""
    from mf_dmri.sequences.pieces import GradientPieces

    delta, big_delta, mixing = 2 * ms, 30 * ms, 10 * ms
    durations = torch.tensor(
        [delta, big_delta - delta, delta, mixing, delta, big_delta - delta, delta],
        dtype=torch.float64,
    )
    gradients = torch.zeros(2, 7, 3, dtype=torch.float64)
    for row, second in enumerate([(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)]):
        gradients[row, 0, 0], gradients[row, 2, 0] = 0.3, -0.3
        gradients[row, 4], gradients[row, 6] = (
            0.3 * torch.tensor(second),
            -0.3 * torch.tensor(second),
        )
    pieces = GradientPieces(durations, gradients)
    radius, diffusivity = 6 * um, 1 * um2_per_ms
    domain = mf.sphere(radius)
    (factor,) = domain.factors
    tolerance = DEFAULT_TOLERANCE["analytic"]
    cutoff = factor_apriori_cutoff(factor, diffusivity, pieces, tolerance, standalone=True)
    value = mf.signal(mf.Compartment(domain, diffusivity), pieces)
    reference = factor_signal(
        factor.source.basis(4 * cutoff, factor.axes, axial=False), diffusivity, pieces
    )
    assert float((value - reference).abs().max()) < tolerance
