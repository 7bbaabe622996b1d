"""Acquisition construction: stored layout, GradientPieces contract, bad inputs."""

import pytest
import torch

from mf_dmri.sequences import (
    OGSE,
    PGSE,
    Acquisition,
    DoublePGSE,
    GradientPieces,
    SampledWaveform,
    multi_shell,
)

F64 = torch.float64
UNIT_X = [[1.0, 0.0, 0.0]]


def test_pieces_contract_for_the_signal_layer():
    directions = torch.tensor([[0.0, 0.0, 1.0], [0.6, 0.8, 0.0]], dtype=F64)
    acquisition = Acquisition(PGSE(0.01, 0.03), directions, [0.02, 0.04])
    assert acquisition.directions.shape == (2, 1, 3)
    pieces = acquisition.pieces()
    assert isinstance(pieces, GradientPieces)
    assert pieces.gradients.shape == (2, 3, 3) and pieces.durations.dtype == F64
    # piece 0 is +G n, piece 1 zero, piece 2 exactly -G n (the signal layer reuses it)
    assert torch.equal(pieces.gradients[:, 2], -pieces.gradients[:, 0])
    assert torch.equal(pieces.gradients[:, 1], torch.zeros(2, 3, dtype=F64))
    assert torch.allclose(pieces.gradients[1, 0], 0.04 * directions[1], rtol=0, atol=0)
    assert pieces.gyromagnetic_ratio == acquisition.gyromagnetic_ratio


def test_double_pgse_pieces_carry_each_block_direction():
    pairs = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]], dtype=F64)
    pieces = Acquisition(DoublePGSE(0.005, 0.02, 0.01), pairs, [0.03]).pieces()
    assert pieces.num_pieces == 7
    expected = 0.03 * torch.tensor(
        [[1, 0, 0], [0, 0, 0], [-1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0], [0, -1, 0]],
        dtype=F64,
    )
    assert torch.equal(pieces.gradients[0], expected)


def test_ogse_pieces_have_equal_durations_and_negated_second_lobe():
    pieces = Acquisition(OGSE(0.02, 0.02, 2, "cos"), UNIT_X, [0.1]).pieces(time_step=1e-4)
    half = pieces.num_pieces // 2
    assert torch.equal(pieces.gradients[:, half:], -pieces.gradients[:, :half])
    assert bool((pieces.durations == pieces.durations[0]).all())


def test_b0_rows_may_have_zero_directions():
    acquisition = Acquisition(PGSE(0.01, 0.03), [[0.0, 0, 0], [1.0, 0, 0]], [0.0, 0.02])
    assert float(acquisition.bvalues()[0]) == 0.0
    assert acquisition.num_measurements == 2 and acquisition.num_channels == 1


NAN = float("nan")


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: Acquisition(PGSE(0.01, 0.03), [[0.0, 0, 0]], [0.02]), ValueError, "zero vector"),
        (
            lambda: Acquisition(PGSE(0.01, 0.03), [[1.0, 1.0, 0]], [0.02]),
            ValueError,
            "unit vectors",
        ),
        (
            lambda: Acquisition(PGSE(0.01, 0.03), UNIT_X, [-0.02]),
            ValueError,
            "amplitudes must be non-negative",
        ),
        (lambda: Acquisition(PGSE(0.01, 0.03), UNIT_X, [NAN]), ValueError, "NaN"),
        (lambda: Acquisition(PGSE(0.01, 0.03), UNIT_X, 0.02), ValueError, r"shape \(M,\)"),
        (
            lambda: Acquisition(PGSE(0.01, 0.03), UNIT_X, [0.02, 0.03]),
            ValueError,
            "1 measurements but amplitudes has 2",
        ),
        (lambda: Acquisition(PGSE(0.01, 0.03), [[1.0, 0]], [0.02]), ValueError, "shape"),
        (
            lambda: Acquisition(DoublePGSE(0.01, 0.03, 0), UNIT_X, [0.02]),
            ValueError,
            r"\(M, 2, 3\)",
        ),
        (lambda: Acquisition("pgse", UNIT_X, [0.02]), TypeError, "WaveformShape"),
        (
            lambda: Acquisition(PGSE(0.01, 0.03), UNIT_X, [0.02], gyromagnetic_ratio=-1.0),
            ValueError,
            "gyromagnetic_ratio",
        ),
        (
            lambda: Acquisition(PGSE(0.01, 0.03), UNIT_X, [0.02], echo_time=0.03),
            ValueError,
            "shorter than the waveform",
        ),
        (lambda: Acquisition(PGSE(0.01, 0.03), UNIT_X, [0.02], echo_time=NAN), ValueError, "NaN"),
        (
            lambda: Acquisition.from_bvalues(PGSE(0.01, 0.03), [-1e9], UNIT_X),
            ValueError,
            "bvalues must be non-negative",
        ),
        (
            lambda: Acquisition.from_bvalues(PGSE(0.01, 0.03), [1e9], [[0.0, 0, 0]]),
            ValueError,
            "zero vector",
        ),
        (
            lambda: Acquisition.from_bvalues(SampledWaveform([0.0, 0.0], 1e-3), [1e9], UNIT_X),
            ValueError,
            "no diffusion weighting",
        ),
        (lambda: multi_shell(DoublePGSE(0.01, 0.03, 0), [1e9], 6), ValueError, "one-channel"),
        (lambda: multi_shell(PGSE(0.01, 0.03), [1e9, 2e9], [6]), ValueError, "2 shells"),
        (lambda: multi_shell(PGSE(0.01, 0.03), [1e9], 6, scheme="random"), ValueError, "scheme"),
        (lambda: multi_shell(PGSE(0.01, 0.03), [1e9], 0), ValueError, "positive integer"),
    ],
)
def test_bad_acquisitions_raise(build, error, match):
    with pytest.raises(error, match=match):
        build()
