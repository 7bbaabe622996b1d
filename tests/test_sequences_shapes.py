"""Waveform shapes: exact piecewise representations, wavevector shapes, input validation."""

import math

import pytest
import torch

from mf_dmri.sequences import OGSE, PGSE, DoublePGSE, SampledWaveform
from mf_dmri.sequences.ogse import period_averages

DELTA, BIG_DELTA = 0.01, 0.03


def _cumulative(durations, values):
    """Wavevector shape at the piece boundaries, (P + 1, C) [s]."""
    steps = values * durations[:, None]
    return torch.cat([torch.zeros_like(steps[:1]), torch.cumsum(steps, dim=0)])


def test_pgse_is_exactly_three_pieces():
    durations, values = PGSE(DELTA, BIG_DELTA).pieces()
    assert durations.tolist() == [DELTA, BIG_DELTA - DELTA, DELTA]
    assert values.tolist() == [[1.0], [0.0], [-1.0]]
    # time_step is ignored for exact piecewise-constant shapes
    assert PGSE(DELTA, BIG_DELTA).pieces(time_step=1e-4)[0].numel() == 3


def test_pgse_with_touching_lobes_drops_the_empty_gap():
    durations, values = PGSE(DELTA, DELTA).pieces()
    assert durations.tolist() == [DELTA, DELTA]
    assert values.tolist() == [[1.0], [-1.0]]


def test_pgse_wavevector_shape_is_the_integral():
    shape = PGSE(DELTA, BIG_DELTA)
    times = torch.tensor(
        [-1.0, 0.0, 0.004, 0.01, 0.02, 0.03, 0.035, 0.04, 0.05], dtype=torch.float64
    )
    expected = [0.0, 0.0, 0.004, 0.01, 0.01, 0.01, 0.005, 0.0, 0.0]
    expected = torch.tensor(expected, dtype=torch.float64)
    assert torch.allclose(shape.wavevector_shape(times)[:, 0], expected, rtol=0, atol=1e-15)
    assert shape.num_channels == 1
    assert float(shape.duration) == pytest.approx(BIG_DELTA + DELTA, rel=1e-15)


def test_double_pgse_pieces_and_channels():
    shape = DoublePGSE(DELTA, BIG_DELTA, 0.005)
    durations, values = shape.pieces()
    assert durations.tolist() == pytest.approx(
        [DELTA, 0.02, DELTA, 0.005, DELTA, 0.02, DELTA], rel=1e-15
    )
    assert values.tolist() == [[1, 0], [0, 0], [-1, 0], [0, 0], [0, 1], [0, 0], [0, -1]]
    assert float(shape.duration) == pytest.approx(2 * (BIG_DELTA + DELTA) + 0.005)
    # both channels return to zero at the end of their block, and the wavevector shape agrees
    # with the cumulative sum of the pieces at every boundary
    boundaries = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(durations, 0)])
    assert torch.allclose(
        shape.wavevector_shape(boundaries), _cumulative(durations, values), rtol=0, atol=1e-16
    )


def test_double_pgse_zero_mixing_time_and_touching_lobes():
    durations, values = DoublePGSE(DELTA, DELTA, 0.0).pieces()
    assert durations.numel() == 4
    assert values.tolist() == [[1, 0], [-1, 0], [0, 1], [0, -1]]


@pytest.mark.parametrize("kind", ["cos", "sin"])
@pytest.mark.parametrize("num_periods", [1, 3])
def test_ogse_pieces_are_exact_averages_with_exact_repeats(kind, num_periods):
    shape = OGSE(0.02, 0.03, num_periods, kind)
    durations, values = shape.pieces(time_step=0.02 / num_periods / 30)
    per_period = shape.pieces_per_period(0.02 / num_periods / 30)
    assert per_period == 32  # smallest multiple of 4 with pieces <= time_step
    lobe = per_period * num_periods
    assert durations.numel() == 2 * lobe + 1 and values.shape == (2 * lobe + 1, 1)
    lobe_durations = torch.cat([durations[:lobe], durations[lobe + 1 :]])
    assert bool((lobe_durations <= 0.02 / num_periods / 30 * (1 + 1e-12)).all())
    # second lobe is the exact negative of the first; periods repeat exactly
    assert torch.equal(values[lobe + 1 :], -values[:lobe])
    assert torch.equal(values[:per_period].repeat(num_periods, 1), values[:lobe])
    # each value is the average of the shape over its piece, so the cumulated pieces hit the
    # closed-form wavevector exactly (to rounding) at every boundary
    boundaries = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(durations, 0)])
    exact = shape.wavevector_shape(boundaries)
    error = (_cumulative(durations, values) - exact).abs().max() / exact.abs().max()
    assert error < 1e-12


def test_ogse_default_pieces_and_touching_lobes():
    durations, values = OGSE(0.02, 0.02, 2, "cos").pieces()
    assert durations.numel() == 2 * 2 * 128
    assert torch.allclose(durations, torch.full_like(durations, 0.02 / 256), rtol=1e-15)


@pytest.mark.parametrize("kind", ["cos", "sin"])
def test_period_averages_match_direct_integration(kind):
    # independent reference: average of w over [a, b] from the antiderivative of w
    count = 16
    edges = torch.arange(count + 1, dtype=torch.float64) * (2 * math.pi / count)
    if kind == "cos":
        direct = (torch.sin(edges[1:]) - torch.sin(edges[:-1])) / (2 * math.pi / count)
    else:
        direct = (torch.cos(edges[:-1]) - torch.cos(edges[1:])) / (2 * math.pi / count)
    assert torch.allclose(period_averages(kind, count), direct, rtol=0, atol=1e-14)


def test_ogse_wavevector_shape_closed_form():
    # Does et al. 2003: F(t) = delta/(2 pi n) sin(2 pi n t/delta) for cos-OGSE in lobe 1
    shape = OGSE(0.02, 0.03, 2, "cos")
    times = torch.tensor([0.003, 0.015, 0.025, 0.034], dtype=torch.float64)
    scale = 0.02 / (2 * math.pi * 2)
    expected = [
        scale * math.sin(4 * math.pi * 0.003 / 0.02),
        scale * math.sin(4 * math.pi * 0.015 / 0.02),
        0.0,
        -scale * math.sin(4 * math.pi * 0.004 / 0.02),
    ]
    expected = torch.tensor(expected, dtype=torch.float64)
    assert torch.allclose(shape.wavevector_shape(times)[:, 0], expected, rtol=0, atol=1e-17)


def test_sampled_waveform_pieces_and_wavevector():
    samples = torch.tensor([[1.0, 0.5], [2.0, -1.0], [-3.0, 0.5]], dtype=torch.float64)
    shape = SampledWaveform(samples, 1e-3)
    durations, values = shape.pieces()
    assert durations.tolist() == [1e-3] * 3 and torch.equal(values, samples)
    times = torch.tensor([0.0, 0.5e-3, 1e-3, 2.5e-3, 3e-3, 5e-3], dtype=torch.float64)
    expected = (
        torch.tensor(
            [[0, 0], [0.5, 0.25], [1, 0.5], [1.5, -0.25], [0, 0], [0, 0]], dtype=torch.float64
        )
        * 1e-3
    )
    assert torch.allclose(shape.wavevector_shape(times), expected, rtol=0, atol=1e-18)
    assert SampledWaveform([1.0, -1.0], 1e-3).num_channels == 1


NAN = float("nan")


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: PGSE(0.03, 0.01), ValueError, "exceeds pulse_separation"),
        (lambda: PGSE(0.0, 0.01), ValueError, "pulse_duration must be positive"),
        (lambda: PGSE(-0.01, 0.01), ValueError, "pulse_duration must be positive"),
        (lambda: PGSE(0.01, 0.0), ValueError, "pulse_separation must be positive"),
        (lambda: PGSE(NAN, 0.01), ValueError, "NaN"),
        (lambda: PGSE(0.01, float("inf")), ValueError, "NaN or infinite"),
        (lambda: PGSE([0.01, 0.02], 0.03), ValueError, "must be a scalar"),
        (lambda: PGSE("abc", 0.03), TypeError, "number"),
        (lambda: DoublePGSE(0.01, 0.03, -0.001), ValueError, "mixing_time must be non-negative"),
        (lambda: DoublePGSE(0.04, 0.03, 0.0), ValueError, "exceeds pulse_separation"),
        (lambda: DoublePGSE(0.01, 0.03, NAN), ValueError, "NaN"),
        (lambda: OGSE(0.02, 0.01, 1), ValueError, "exceeds pulse_separation"),
        (lambda: OGSE(0.02, 0.03, 0), ValueError, "positive integer"),
        (lambda: OGSE(0.02, 0.03, 1.5), TypeError, "positive integer"),
        (lambda: OGSE(0.02, 0.03, True), TypeError, "positive integer"),
        (lambda: OGSE(0.02, 0.03, 1, "tan"), ValueError, "kind must be"),
        (lambda: OGSE(0.02, 0.03, 1).pieces(time_step=0.0), ValueError, "time_step"),
        (lambda: OGSE(0.02, 0.03, 1).pieces(time_step=NAN), ValueError, "time_step"),
        (lambda: SampledWaveform(torch.zeros(0, 1), 1e-3), ValueError, "n >= 1"),
        (lambda: SampledWaveform(torch.zeros(2, 2, 2), 1e-3), ValueError, "shape"),
        (lambda: SampledWaveform([1.0, NAN], 1e-3), ValueError, "NaN"),
        (lambda: SampledWaveform([1.0, -1.0], 0.0), ValueError, "time_step must be positive"),
        (lambda: SampledWaveform([1.0, -1.0], -1e-3), ValueError, "time_step must be positive"),
    ],
)
def test_bad_shapes_raise(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_empty_gap_with_gradient_is_refused():
    delta = torch.tensor(0.01, dtype=torch.float64, requires_grad=True)
    separation = torch.tensor(0.01, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="zero length"):
        PGSE(delta, separation).pieces()
    with pytest.raises(ValueError, match="zero length"):
        OGSE(delta, separation, 2).pieces()
    with pytest.raises(ValueError, match="mixing time has zero length"):
        DoublePGSE(0.01, 0.02, torch.tensor(0.0, dtype=torch.float64, requires_grad=True)).pieces()
