"""``mf-dmri fit`` on CSV and FSL inputs, and its error messages."""

import argparse
import csv
import json

import numpy as np
import pytest
import torch
from test_inverse_helpers import single_thread  # noqa: F401

from mf_dmri.cli import fit as fit_cli
from mf_dmri.inverse import CylinderModel, sample_noise
from mf_dmri.io.fsl import write_fsl_scheme
from mf_dmri.io.vocabulary import MfDmriDeprecationWarning
from mf_dmri.sequences import PGSE, Acquisition
from mf_dmri.units import ms, s_per_mm2, um

pytestmark = pytest.mark.usefixtures("single_thread")
TRUTH = {"s0": 2.0, "radius": 4 * um, "intra_diffusivity": 1.8e-9}
SIGMA = 0.01


def _run(argv):
    parser = argparse.ArgumentParser()
    fit_cli.register(parser.add_subparsers())
    args = parser.parse_args(["fit", *argv])
    return args.func(args)


def _scheme(seed=0):
    """b [s/mm^2] and unit directions: 2 b = 0, then 3 shells x 10 directions."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(10, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    bvalues = np.concatenate([[0.0, 0.0], np.repeat([1000.0, 4000.0, 8000.0], 10)])
    vectors = np.concatenate([np.zeros((2, 3)), np.tile(directions, (3, 1))])
    return bvalues, vectors


def _simulate(bvalues, vectors, delta, big_delta, seed=1):
    acquisition = Acquisition.from_bvalues(
        PGSE(delta * ms, big_delta * ms), torch.tensor(bvalues * s_per_mm2), torch.tensor(vectors)
    )
    model = CylinderModel(axis=(0.0, 0.0, 1.0), unit_cutoff=30.0)
    clean = model({k: torch.tensor(v) for k, v in TRUTH.items()}, acquisition).detach()
    return sample_noise("rician", clean, SIGMA, torch.Generator().manual_seed(seed)).numpy()


def _write_csv(path, columns):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(columns))
        writer.writerows(zip(*columns.values()))


def test_fit_from_csv_with_two_timings_in_mixed_order(tmp_path):
    """Rows of two timings interleaved (old column names, accepted with a deprecation
    warning): the CLI groups them and keeps data and protocol consistent.  The radius must
    come back within 3 standard errors."""
    bvalues, vectors = _scheme()
    first = _simulate(bvalues, vectors, 10, 30, seed=1)
    second = _simulate(bvalues, vectors, 15, 40, seed=2)
    rows = np.arange(2 * bvalues.size)
    rng = np.random.default_rng(5)
    rng.shuffle(rows)
    both = lambda a, b: np.concatenate([a, b])[rows]  # noqa: E731
    columns = {
        "b": both(bvalues, bvalues),
        "gx": both(vectors[:, 0], vectors[:, 0]),
        "gy": both(vectors[:, 1], vectors[:, 1]),
        "gz": both(vectors[:, 2], vectors[:, 2]),
        "signal": both(first, second),
        "delta_ms": both(np.full(32, 10.0), np.full(32, 15.0)),
        "Delta_ms": both(np.full(32, 30.0), np.full(32, 40.0)),
    }
    _write_csv(tmp_path / "data.csv", columns)
    output = tmp_path / "fit.json"
    argv = ["--data", str(tmp_path / "data.csv"), "--axis", "0,0,1", "--sigma", str(SIGMA)]
    with pytest.warns(MfDmriDeprecationWarning, match="'delta_ms' is deprecated"):
        code = _run([*argv, "--unit-cutoff", "30", "--no-progress", "-o", str(output)])
    assert code == 0
    text = output.read_text()
    assert "NaN" not in text and "Infinity" not in text
    summary = json.loads(text)
    assert summary["engine"] == "voxelwise" and summary["converged"]
    radius = summary["parameters"]["radius_um"]
    assert radius["unit"] == "um" and radius["fitted"]
    assert abs(radius["estimate"] * 1e-6 - TRUTH["radius"]) < 3e-6 * radius["standard_error"]
    assert summary["parameters"]["s0"]["estimate"] == pytest.approx(2.0, rel=0.02)


def test_fit_from_fsl_files_with_fitted_axis(tmp_path):
    bvalues, vectors = _scheme(seed=3)
    data = _simulate(bvalues, vectors, 10, 30, seed=4)
    write_fsl_scheme(tmp_path / "bvals", tmp_path / "bvecs", bvalues * s_per_mm2, vectors)
    np.savetxt(tmp_path / "signal.txt", data)
    output = tmp_path / "fit.csv"
    code = _run(
        [
            "--bvals",
            str(tmp_path / "bvals"),
            "--bvecs",
            str(tmp_path / "bvecs"),
            "--signal",
            str(tmp_path / "signal.txt"),
            "--pulse-duration-ms",
            "10",
            "--pulse-separation-ms",
            "30",
            "--likelihood",
            "rician",
            "--fit-axis",
            "--no-progress",
            "--starts",
            "1",
            "--unit-cutoff",
            "30",
            "--fix",
            "intra_diffusivity_um2_per_ms=1.8",
            "-o",
            str(output),
        ]
    )
    assert code == 0
    with output.open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert {"radius_um", "radius_se_um", "axis_tilt_1", "axis_tilt_2", "sigma", "s0"} <= set(row)
    assert "intra_diffusivity_se_um2_per_ms" not in row  # fixed, not fitted
    assert float(row["intra_diffusivity_um2_per_ms"]) == pytest.approx(1.8)
    assert float(row["sigma"]) == pytest.approx(SIGMA, rel=0.5)
    radius, error = float(row["radius_um"]), float(row["radius_se_um"])
    assert abs(radius * 1e-6 - TRUTH["radius"]) < 3e-6 * error


T = ["--pulse-duration-ms", "10", "--pulse-separation-ms", "30"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (T, "exactly one data source"),
        (["--data", "DATA", "--pulse-separation-ms", "30"], "give both --pulse-duration-ms"),
        (["--data", "DATA"], "timing unknown: give --pulse-duration-ms"),
        (["--data", "BAD"], "line 2: b_s_per_mm2='x' is not a number"),
        (["--data", "NOCOL", *T], "lacks the columns"),
        (["--data", "DATA", *T, "--fix", "radius"], "KEY=VALUE"),
        (["--data", "DATA", *T, "--fix", "radius_ms=3"], "'ms' is a time unit"),
        (["--data", "DATA", *T, "--axis", "1,0"], "--axis must be"),
        (
            ["--data", "DATA", "--pulse-duration-ms", "30", "--pulse-separation-ms", "10"],
            "pulse_separation",
        ),
        (["--data", "DATA", *T, "--fit-axis", "--engine", "voxelwise"], "use --engine ml"),
    ],
)
def test_cli_errors_name_the_problem(tmp_path, argv, message):
    bvalues, vectors = _scheme()
    columns = {
        "b_s_per_mm2": bvalues,
        "direction_x": vectors[:, 0],
        "direction_y": vectors[:, 1],
        "direction_z": vectors[:, 2],
        "signal": np.ones(32),
    }
    _write_csv(tmp_path / "data.csv", columns)
    (tmp_path / "bad.csv").write_text(
        "b_s_per_mm2,direction_x,direction_y,direction_z,signal\nx,0,0,1,1\n"
    )
    (tmp_path / "nocol.csv").write_text("b_s_per_mm2,direction_x,direction_y,signal\n0,0,0,1\n")
    paths = {"DATA": "data.csv", "BAD": "bad.csv", "NOCOL": "nocol.csv"}
    argv = [str(tmp_path / paths[a]) if a in paths else a for a in argv]
    with pytest.raises(ValueError, match=message):
        _run([*argv, "-o", str(tmp_path / "out.json")])
