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
    """Rows of two timings interleaved: the CLI groups them and keeps data and protocol
    consistent.  The radius must come back within 3 standard errors."""
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
    code = _run(
        [
            "--data",
            str(tmp_path / "data.csv"),
            "--axis",
            "0,0,1",
            "--sigma",
            str(SIGMA),
            "--starts",
            "1",
            "--unit-cutoff",
            "30",
            "-o",
            str(output),
        ]
    )
    assert code == 0
    summary = json.loads(output.read_text())
    radius = summary["parameters"]["radius"]
    assert radius["unit"] == "m" and radius["fitted"]
    assert abs(radius["estimate"] - TRUTH["radius"]) < 3 * radius["standard_error"]
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
            "--delta",
            "10",
            "--Delta",
            "30",
            "--starts",
            "1",
            "--unit-cutoff",
            "30",
            "--fix",
            "intra_diffusivity=1.8e-9",
            "-o",
            str(output),
        ]
    )
    assert code == 0
    with output.open() as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    assert {"radius", "axis_tilt_1", "axis_tilt_2", "sigma", "s0"} <= set(rows)
    assert rows["intra_diffusivity"]["fitted"] == "False"
    assert float(rows["sigma"]["estimate"]) == pytest.approx(SIGMA, rel=0.5)
    radius, error = float(rows["radius"]["estimate"]), float(rows["radius"]["standard_error"])
    assert abs(radius - TRUTH["radius"]) < 3 * error


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--delta", "10", "--Delta", "30"], "exactly one data source"),
        (["--data", "DATA", "--Delta", "30"], "give --delta"),
        (["--data", "BAD"], "line 2: b='x' is not a number"),
        (["--data", "NOCOL", "--delta", "10", "--Delta", "30"], "lacks columns"),
        (["--data", "DATA", "--delta", "10", "--Delta", "30", "--fix", "radius"], "NAME=VALUE"),
        (["--data", "DATA", "--delta", "10", "--Delta", "30", "--axis", "1,0"], "--axis must be"),
        (["--data", "DATA", "--delta", "30", "--Delta", "10"], "pulse_separation"),
    ],
)
def test_cli_errors_name_the_problem(tmp_path, argv, message):
    bvalues, vectors = _scheme()
    columns = {
        "b": bvalues,
        "gx": vectors[:, 0],
        "gy": vectors[:, 1],
        "gz": vectors[:, 2],
        "signal": np.ones(32),
    }
    _write_csv(tmp_path / "data.csv", columns)
    (tmp_path / "bad.csv").write_text("b,gx,gy,gz,signal\nx,0,0,1,1\n")
    (tmp_path / "nocol.csv").write_text("b,gx,gy,signal\n0,0,0,1\n")
    paths = {"DATA": "data.csv", "BAD": "bad.csv", "NOCOL": "nocol.csv"}
    argv = [str(tmp_path / paths[a]) if a in paths else a for a in argv]
    with pytest.raises(ValueError, match=message):
        _run([*argv, "-o", str(tmp_path / "out.json")])
