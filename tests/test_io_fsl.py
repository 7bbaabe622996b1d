"""FSL bvals/bvecs reading and writing."""

import numpy as np
import pytest
import torch

from mf_dmri.io.fsl import (
    load_fsl_acquisition,
    read_fsl_bvals,
    read_fsl_bvecs,
    read_fsl_scheme,
    save_fsl_acquisition,
    write_fsl_scheme,
)
from mf_dmri.sequences import PGSE, Acquisition, DoublePGSE, pgse_bvalue
from mf_dmri.units import ms, s_per_mm2

F64 = torch.float64


def _write(path, text):
    path.write_text(text)
    return path


def test_fsl_layout_is_read_in_s_per_mm2_and_converted_to_si(tmp_path):
    bvals = _write(tmp_path / "bvals", "0 1000 2000\n")
    bvecs = _write(tmp_path / "bvecs", "0 1 0\n0 0 0.7071\n0 0 0.7071\n")
    assert read_fsl_bvals(bvals).tolist() == [0.0, 1000.0, 2000.0]
    assert read_fsl_bvecs(bvecs).shape == (3, 3)
    acquisition = load_fsl_acquisition(bvals, bvecs, 10 * ms, 30 * ms)
    assert torch.allclose(
        acquisition.bvalues(), torch.tensor([0.0, 1e9, 2e9], dtype=F64), rtol=1e-12
    )
    # the 4-decimal vector was normalised (within the default tolerance)
    direction = acquisition.directions[2, 0]
    assert torch.allclose(direction, torch.tensor([0, 1, 1], dtype=F64) / 2**0.5, atol=1e-14)
    # amplitudes follow Stejskal-Tanner
    assert torch.allclose(pgse_bvalue(acquisition.amplitudes, 0.01, 0.03), acquisition.bvalues())


def test_transposed_and_column_layouts(tmp_path):
    bvals_row = _write(tmp_path / "row", "0 1000 1000 3000\n")
    bvals_column = _write(tmp_path / "column", "0\n1000\n1000\n3000\n")
    vectors = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0.6, 0.8]])
    fsl = _write(tmp_path / "fsl", "\n".join(" ".join(map(str, row)) for row in vectors.T))
    mrtrix = _write(tmp_path / "mrtrix", "\n".join(" ".join(map(str, row)) for row in vectors))
    assert np.array_equal(read_fsl_bvals(bvals_row), read_fsl_bvals(bvals_column))
    assert np.array_equal(read_fsl_bvecs(fsl), vectors)
    assert np.array_equal(read_fsl_bvecs(mrtrix), vectors)
    bvalues, directions = read_fsl_scheme(bvals_column, mrtrix)
    assert bvalues.tolist() == [0.0, 1e9, 1e9, 3e9]
    assert directions.dtype == F64 and directions.shape == (4, 3)


def test_round_trip_with_a_b0_row(tmp_path):
    directions = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 0.6, 0.8], [0.48, 0.6, 0.64]], dtype=F64)
    bvalues = torch.tensor([0.0, 700 * s_per_mm2, 1000 * s_per_mm2, 2500 * s_per_mm2], dtype=F64)
    original = Acquisition.from_bvalues(PGSE(0.008, 0.025), bvalues, directions)
    save_fsl_acquisition(original, tmp_path / "bvals", tmp_path / "bvecs")
    assert (tmp_path / "bvals").read_text().split() == ["0", "700", "1000", "2500"]
    loaded = load_fsl_acquisition(tmp_path / "bvals", tmp_path / "bvecs", 0.008, 0.025)
    assert torch.allclose(loaded.bvalues(), bvalues, rtol=1e-11, atol=0)
    assert torch.allclose(loaded.directions, original.directions, rtol=0, atol=1e-12)
    assert torch.allclose(loaded.amplitudes, original.amplitudes, rtol=1e-11, atol=0)


def test_b0_row_with_a_unit_vector_is_kept(tmp_path):
    write_fsl_scheme(
        tmp_path / "bvals", tmp_path / "bvecs", [0.0, 1e9], [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    )
    _, directions = read_fsl_scheme(tmp_path / "bvals", tmp_path / "bvecs")
    assert directions.tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]


@pytest.mark.parametrize(
    "bvals_text, bvecs_text, match",
    [
        ("0 1000 abc\n", "0 1 0\n0 0 1\n0 0 0\n", "line 1 does not parse"),
        ("", "0\n0\n0\n", "is empty"),
        ("0 nan\n", "0 1\n0 0\n0 0\n", "NaN"),
        ("0 -1000\n", "0 1\n0 0\n0 0\n", "negative b-values"),
        ("0 1000\n0 1000\n", "0 1\n0 0\n0 0\n", "one row"),
        ("0 1000 1000\n", "0 1\n0 0\n0 0\n", "3 b-values but"),
        ("0 1000\n", "0 1\n0 0\n", r"shape \(2, 2\)"),
        ("0 1000\n", "0 1\n0 0\n0\n", "different lengths"),
        ("0 1000\n", "0 0.9\n0 0\n0 0\n", "column 2 has norm 0.9"),
        ("0 1000\n", "0 0\n0 0\n0 0\n", "set that b-value to 0"),
        ("0 1000\n", "0.5 1\n0 0\n0 0\n", "column 1 has norm 0.5"),
    ],
)
def test_bad_files_raise(tmp_path, bvals_text, bvecs_text, match):
    bvals = _write(tmp_path / "bvals", bvals_text)
    bvecs = _write(tmp_path / "bvecs", bvecs_text)
    with pytest.raises(ValueError, match=match):
        load_fsl_acquisition(bvals, bvecs, 0.01, 0.03)


def test_missing_file_and_unwritable_acquisitions(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_fsl_bvals(tmp_path / "absent")
    pairs = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]], dtype=F64)
    double = Acquisition(DoublePGSE(0.005, 0.02, 0.0), pairs, [0.03])
    with pytest.raises(ValueError, match="2 channels"):
        save_fsl_acquisition(double, tmp_path / "bvals", tmp_path / "bvecs")
    with pytest.raises(ValueError, match=r"directions \(N, 3\)"):
        write_fsl_scheme(tmp_path / "bvals", tmp_path / "bvecs", [1e9], [[1.0, 0.0]])
    with pytest.raises(ValueError, match="finite"):
        write_fsl_scheme(tmp_path / "bvals", tmp_path / "bvecs", [float("nan")], [[1.0, 0, 0]])
