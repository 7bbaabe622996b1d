"""Gradient tables, images and waveforms in and out: Camino, MRtrix, dipy, NIfTI + BIDS,
MC/DC waveform schemes.  Round trips are exact where the format allows it."""

import json
import math

import numpy as np
import pytest
import torch

from mf_dmri.io.bids import scheme_with_sidecar_timing, timing_fields
from mf_dmri.io.camino import read_camino_scheme, write_camino_scheme
from mf_dmri.io.mrtrix import read_mrtrix_b, write_mrtrix_b
from mf_dmri.io.nifti import read_dwi, write_dwi
from mf_dmri.io.scheme import Scheme
from mf_dmri.io.waveforms import load_waveform_shape, read_mcdc_waveform
from mf_dmri.sequences import PGSE, Acquisition, multi_shell
from mf_dmri.units import GAMMA_PROTON, ms, s_per_mm2


def _mixed_scheme(rng) -> Scheme:
    directions = rng.normal(size=(12, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    directions[0] = 0.0
    amplitudes = rng.uniform(0.01, 0.3, 12)
    amplitudes[0] = 0.0
    delta = np.where(np.arange(12) < 6, 0.01, 0.015)
    return Scheme(
        directions=directions,
        gradient_amplitudes=amplitudes,
        pulse_duration=delta,
        pulse_separation=delta + 0.02 + rng.uniform(0, 1e-3, 12).round(6),
        echo_time=np.full(12, 0.08),
    )


def _same(first: Scheme, second: Scheme) -> None:
    for name in ("directions", "gradient_amplitudes", "bvalues", "pulse_duration"):
        a, b = getattr(first, name), getattr(second, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_camino_stejskal_tanner_round_trip_is_exact(tmp_path):
    scheme = _mixed_scheme(np.random.default_rng(1))
    path = write_camino_scheme(tmp_path / "a.scheme", scheme)
    again = read_camino_scheme(path)
    _same(scheme, again)
    np.testing.assert_array_equal(again.pulse_separation, scheme.pulse_separation)
    np.testing.assert_array_equal(again.echo_time, scheme.echo_time)
    text = path.read_text()
    assert text.splitlines()[0] == "VERSION: STEJSKALTANNER"
    assert write_camino_scheme(tmp_path / "b.scheme", again).read_text() == text


def test_camino_rows_become_acquisitions_with_exact_amplitudes(tmp_path):
    scheme = _mixed_scheme(np.random.default_rng(2))
    groups = scheme.acquisitions()
    assert sum(rows.size for _, rows in groups) == scheme.num_rows
    for acquisition, rows in groups:
        np.testing.assert_array_equal(
            acquisition.amplitudes.numpy(), scheme.gradient_amplitudes[rows]
        )
        delta = scheme.pulse_duration[rows[0]]
        separation = scheme.pulse_separation[rows[0]]
        # Stejskal and Tanner 1965: b = gamma^2 G^2 delta^2 (Delta - delta/3)
        expected = (GAMMA_PROTON * scheme.gradient_amplitudes[rows] * delta) ** 2 * (
            separation - delta / 3
        )
        np.testing.assert_allclose(acquisition.bvalues().numpy(), expected, rtol=1e-12)


def test_camino_bvector_and_bad_files(tmp_path):
    path = tmp_path / "b.scheme"
    path.write_text("# comment\nVERSION: BVECTOR\n0 0 0 0\n1 0 0 1E9\n0 1 0 3E9\n")
    scheme = read_camino_scheme(path)
    np.testing.assert_array_equal(scheme.bvalues, [0, 1e9, 3e9])
    assert not scheme.has_timing
    assert read_camino_scheme(write_camino_scheme(tmp_path / "c", scheme)).bvalues[2] == 3e9
    path.write_text("VERSION: STEJSKALTANNER\n1 0 0 0.1 0.03\n")
    with pytest.raises(ValueError, match="has 5 values; a STEJSKALTANNER scheme has 7"):
        read_camino_scheme(path)
    path.write_text("1 0 0 0.1 0.03 0.01 0.05\n")
    with pytest.raises(ValueError, match="no VERSION line"):
        read_camino_scheme(path)


def test_mrtrix_round_trips(tmp_path):
    path = tmp_path / "grad.b"
    path.write_text(
        "# MRtrix gradient table\n0 0 0 0\n0.70710678 0.70710678 0 1000\n"
        "0.267261 0.534522 0.801784 2999.5\n1 0 0 987.654\n"
    )
    scheme = read_mrtrix_b(path)
    np.testing.assert_allclose(scheme.bvalues / s_per_mm2, [0, 1000, 2999.5, 987.654])
    written = write_mrtrix_b(tmp_path / "out.b", scheme)
    assert np.array_equal(np.loadtxt(written), np.loadtxt(path))  # the file's numbers, exactly
    again = read_mrtrix_b(written)
    _same(scheme, again)
    # arbitrary SI b-values: s/m^2 <-> s/mm^2 scaling costs at most one rounding
    rng = np.random.default_rng(3)
    random = Scheme(
        directions=np.tile([[0.0, 0.0, 1.0]], (50, 1)), bvalues=rng.uniform(0, 1e10, 50)
    )
    back = read_mrtrix_b(write_mrtrix_b(tmp_path / "r.b", random))
    np.testing.assert_allclose(back.bvalues, random.bvalues, rtol=2.3e-16, atol=0)
    path.write_text("1 0 0\n")
    with pytest.raises(ValueError, match="has 3 values; an MRtrix gradient table has 4"):
        read_mrtrix_b(path)


def test_dipy_gradient_table_round_trip():
    dipy_gradients = pytest.importorskip("dipy.core.gradients")
    from mf_dmri.io.dipy_gtab import acquisition_from_gradient_table, to_gradient_table

    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(20, 3))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    bvals = np.repeat([0.0, 1000.0, 2500.0, 5000.0], 5)
    vectors[bvals == 0] = 0.0
    gtab = dipy_gradients.gradient_table(bvals, bvecs=vectors, big_delta=0.03, small_delta=0.01)
    acquisition = acquisition_from_gradient_table(gtab)
    assert float(acquisition.waveform.pulse_duration) == 0.01
    np.testing.assert_allclose(acquisition.bvalues().numpy(), bvals * s_per_mm2, rtol=1e-13)
    again = to_gradient_table(acquisition)
    np.testing.assert_allclose(again.bvals, gtab.bvals, rtol=1e-13, atol=1e-9)
    np.testing.assert_allclose(again.bvecs, gtab.bvecs, atol=1e-15)
    assert (again.small_delta, again.big_delta) == (0.01, 0.03)
    np.testing.assert_array_equal(again.b0s_mask, gtab.b0s_mask)
    no_timing = dipy_gradients.gradient_table(bvals, bvecs=vectors)
    with pytest.raises(ValueError, match="no timing: give pulse_duration_ms"):
        acquisition_from_gradient_table(no_timing)
    assert (
        acquisition_from_gradient_table(
            no_timing, pulse_duration=0.01, pulse_separation=0.03
        ).num_measurements
        == 20
    )


def test_nifti_bids_round_trip(tmp_path):
    acquisition = multi_shell(PGSE(10 * ms, 30 * ms), [0, 1e9, 2e9], 4)
    scheme = Scheme.from_acquisition(acquisition)
    data = np.random.default_rng(5).uniform(0, 1, (3, 2, 2, acquisition.num_measurements))
    sidecar = {**timing_fields(scheme), "mf_dmri": {"note": math.nan}}
    path = write_dwi(tmp_path / "dwi.nii.gz", data, scheme, sidecar)
    text = (tmp_path / "dwi.json").read_text()
    assert "NaN" not in text and json.loads(text)["SmallDelta"] == 0.01
    image = read_dwi(path)
    np.testing.assert_array_equal(image.data, data)
    np.testing.assert_allclose(image.scheme.bvalues_si(), acquisition.bvalues().numpy(), rtol=1e-11)
    ((again, rows),) = image.scheme.acquisitions()
    assert float(again.waveform.pulse_separation) == 0.03
    np.testing.assert_allclose(again.directions.numpy(), acquisition.directions.numpy(), atol=1e-12)


def test_sidecar_timing_in_milliseconds_is_refused():
    scheme = Scheme(directions=np.eye(3), bvalues=np.full(3, 1e9))
    with pytest.raises(ValueError, match="in seconds"):
        scheme_with_sidecar_timing(scheme, {"SmallDelta": 10, "LargeDelta": 30})
    with pytest.raises(ValueError, match="both SmallDelta and LargeDelta"):
        scheme_with_sidecar_timing(scheme, {"SmallDelta": 0.01})
    assert scheme_with_sidecar_timing(scheme, {}) is scheme


def test_waveform_shape_files(tmp_path):
    samples = np.concatenate([np.ones(10), np.zeros(20), -np.ones(10)])
    np.save(tmp_path / "w.npy", samples)
    np.savetxt(tmp_path / "w.txt", samples)
    step = 1 * ms
    for name in ("w.npy", "w.txt"):
        waveform = load_waveform_shape(tmp_path / name, step)
        acquisition = Acquisition.from_bvalues(
            waveform, torch.tensor([1e9]), torch.tensor([[1.0, 0.0, 0.0]])
        )
        reference = Acquisition.from_bvalues(
            PGSE(10 * ms, 30 * ms), torch.tensor([1e9]), torch.tensor([[1.0, 0.0, 0.0]])
        )
        torch.testing.assert_close(acquisition.amplitudes, reference.amplitudes, rtol=1e-12, atol=0)


def test_mcdc_waveform_converges_to_the_trapezoid_bvalue(tmp_path):
    """A trapezoidal PGSE written as an MC/DC WAVEFORM scheme: the b-value converges to the
    closed form b = gamma^2 G^2 [delta^2 (Delta - delta/3) + eps^3/30 - delta eps^2/6]
    (ramp time eps, delta from ramp onset to ramp-down onset; Bernstein, King and Zhou,
    Handbook of MRI Pulse Sequences, 2004, section 17.1) at the rate O(substeps^-2)."""
    amplitude, eps, delta, separation, step = 0.05, 1e-3, 10e-3, 30e-3, 0.5e-3
    duration = separation + delta + eps
    times = np.arange(0, duration + step / 2, step)

    def lobe(t):
        return np.clip(np.minimum(t / eps, (delta + eps - t) / eps), 0, 1)

    gradient = amplitude * (lobe(times) - lobe(times - separation))
    rows = np.stack([gradient, np.zeros_like(times), np.zeros_like(times)], 1)
    body = "\n".join(" ".join(f"{v:.17g}" for v in row) for row in rows)
    path = tmp_path / "w.scheme"
    path.write_text(f"VERSION: WAVEFORM\n{duration!r} {times.size} 1\n{body}\n")
    exact = (GAMMA_PROTON * amplitude) ** 2 * (
        delta**2 * (separation - delta / 3) + eps**3 / 30 - delta * eps**2 / 6
    )
    errors = [
        abs(float(read_mcdc_waveform(path, substeps=s).bvalues()[0]) - exact) / exact
        for s in (2, 4, 8)
    ]
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(rates - 2) < 0.1), rates
    assert errors[-1] < 1e-5
    path.write_text("VERSION: WAVEFORM\n0.04 3 2\n0 0 0 1 0 0 0 0 0\n")
    with pytest.raises(ValueError, match="expected 2 x 3 x 3 = 18"):
        read_mcdc_waveform(path)
