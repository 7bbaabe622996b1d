"""Analytic matrix-formalism signals against an independent high-accuracy evaluation
(tests/reference_mf.py: much larger symmetric bases, quadrature moments, scipy expm) and the
team's reference table (shared/reference/restricted_pgse_exact.csv).  Acceptance: <= 1e-6
absolute with the checked cutoff at tolerance 1e-6 (and <= 1e-4 a priori at the default)
for R = 5 um, D = 2e-9 m^2/s, b <= 10,000 s/mm^2."""

import csv
import functools
from pathlib import Path

import numpy as np
import pytest
import reference_mf as ref
import torch
from helpers import pgse_amplitude, pgse_pieces

from mf_dmri.analytic import cylinder, slab, sphere
from mf_dmri.signal import Compartment, signal, signal_with_error
from mf_dmri.units import ms, mT_per_m, s_per_mm2, um

RADIUS, DIFFUSIVITY = 5 * um, 2e-9
TIMINGS = [(1 * ms, 40 * ms), (10 * ms, 50 * ms), (30 * ms, 40 * ms)]
BVALUES = np.array([100.0, 1000.0, 4000.0, 10000.0]) * s_per_mm2


@functools.cache
def _unit_reference(shape):
    builder = {"slab": ref.slab_z, "cylinder": ref.disk_x, "sphere": ref.ball_z}[shape]
    return builder({"slab": 200.0, "cylinder": 65.0, "sphere": 65.0}[shape])


def _domain(shape):
    return {
        "slab": lambda: slab(2 * RADIUS),
        "cylinder": lambda: cylinder(RADIUS),
        "sphere": lambda: sphere(RADIUS),
    }[shape]()


@pytest.mark.parametrize("shape", ["slab", "cylinder", "sphere"])
@pytest.mark.parametrize("timing", TIMINGS)
def test_default_cutoff_matches_independent_evaluation(shape, timing):
    delta, big_delta = timing
    amplitudes = pgse_amplitude(BVALUES, delta, big_delta)
    size = 2 * RADIUS if shape == "slab" else RADIUS
    expected = ref.pgse_signal(
        _unit_reference(shape), size, DIFFUSIVITY, delta, big_delta, amplitudes
    )
    direction = (0.0, 0.0, 1.0) if shape == "sphere" else (1.0, 0.0, 0.0)
    pieces = pgse_pieces(delta, big_delta, amplitudes, direction)
    checked = signal_with_error(Compartment(_domain(shape), DIFFUSIVITY), pieces, tolerance=1e-6)
    got = checked.signal.numpy()
    assert np.all(np.abs(got - expected) <= checked.error_bar.numpy())
    assert np.abs(got - expected).max() <= 1e-6
    default = signal(Compartment(_domain(shape), DIFFUSIVITY), pieces).numpy()
    assert np.abs(default - expected).max() <= 1e-4  # the default tolerance, a priori
    assert np.abs(got.imag).max() < 1e-12  # PGSE echo is real (symmetric propagator)


def _reference_rows():
    path = (
        Path(__file__).resolve().parents[2] / "shared" / "reference" / "restricted_pgse_exact.csv"
    )
    if not path.exists():
        path = (
            Path(__file__).resolve().parents[1]
            / "shared"
            / "reference"
            / "restricted_pgse_exact.csv"
        )
    if not path.exists():
        pytest.skip("shared/reference/restricted_pgse_exact.csv not found")
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("shape", ["slab", "cylinder", "sphere"])
def test_team_reference_table(shape):
    rows = [r for r in _reference_rows() if r["geometry"] == shape]
    bvalues = np.array([float(r["b_s_per_mm2"]) for r in rows])
    keep = bvalues <= 10000
    amplitudes = pgse_amplitude(bvalues[keep] * s_per_mm2, 10 * ms, 50 * ms)
    # the table's amplitude column, rounded to 1e-3 mT/m, agrees with Stejskal-Tanner
    table_g = np.array([float(r["g_mT_per_m"]) for r in rows])[keep] * mT_per_m
    np.testing.assert_allclose(amplitudes, table_g, rtol=2e-5)
    expected = np.array([float(r["E_matrix_formalism_exact"]) for r in rows])[keep]
    got = signal_with_error(
        Compartment(_domain(shape), DIFFUSIVITY),
        pgse_pieces(10 * ms, 50 * ms, amplitudes),
        tolerance=1e-6,
    ).signal.real.numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("shape", ["cylinder", "sphere"])
def test_convergence_rate_in_cutoff(shape):
    """The truncation error decays algebraically with the cutoff; fit the rate."""
    delta, big_delta = 1 * ms, 40 * ms
    amplitudes = pgse_amplitude(np.array([10000.0]) * s_per_mm2, delta, big_delta)
    expected = ref.pgse_signal(
        _unit_reference(shape), RADIUS, DIFFUSIVITY, delta, big_delta, amplitudes
    )
    pieces = pgse_pieces(delta, big_delta, amplitudes)
    builder = cylinder if shape == "cylinder" else sphere
    cutoffs = np.array([100.0, 200.0, 400.0, 800.0])
    errors = []
    for c in cutoffs:
        dom = builder(RADIUS, max_eigenvalue=c / RADIUS**2)
        errors.append(abs(signal(Compartment(dom, DIFFUSIVITY), pieces).numpy() - expected)[0])
    slope = np.polyfit(np.log(cutoffs), np.log(errors), 1)[0]
    assert slope < -2.0, f"error ~ cutoff^{slope:.2f}"
    assert all(np.diff(np.log(errors)) < 0)


def test_complex_dtype_and_device():
    pieces = pgse_pieces(10 * ms, 50 * ms, [0.0, 0.05])
    out = signal(Compartment(sphere(RADIUS), DIFFUSIVITY), pieces)
    assert out.dtype == torch.complex128 and out.shape == (2,)
    assert float(out[0].real) == pytest.approx(1.0, abs=1e-14)
