"""b-values and b-tensors of acquisitions against closed forms and independent integrals."""

import math

import numpy as np
import pytest
import torch

from mf_dmri.sequences import (
    OGSE,
    PGSE,
    Acquisition,
    DoublePGSE,
    SampledWaveform,
    double_pgse_btensor,
    double_pgse_bvalue,
    multi_shell,
    ogse_bvalue,
    pgse_btensor,
    pgse_bvalue,
    pgse_qvalue,
)
from mf_dmri.sequences.gram import piecewise_gram, quadrature_gram
from mf_dmri.units import GAMMA_PROTON

F64 = torch.float64
DIRECTIONS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8], [0.48, 0.6, 0.64]], dtype=F64)
AMPLITUDES = torch.tensor([0.01, 0.05, 0.08], dtype=F64)


def _relative(value, reference):
    return float(((value - reference).abs().max() / reference.abs().max()).detach())


@pytest.mark.parametrize("delta, big_delta", [(0.01, 0.03), (0.005, 0.005), (0.002, 0.05)])
def test_pgse_bvalue_is_stejskal_tanner(delta, big_delta):
    # Stejskal & Tanner, J. Chem. Phys. 42, 288 (1965): b = gamma^2 G^2 delta^2 (Delta - delta/3)
    acquisition = Acquisition(PGSE(delta, big_delta), DIRECTIONS, AMPLITUDES)
    q = GAMMA_PROTON * AMPLITUDES * delta
    reference = q**2 * (big_delta - delta / 3)
    assert _relative(acquisition.bvalues(), reference) < 1e-12
    assert _relative(acquisition.pieces().bvalues(), reference) < 1e-12
    assert _relative(pgse_bvalue(AMPLITUDES, delta, big_delta), reference) < 1e-15
    assert _relative(pgse_qvalue(AMPLITUDES, delta), q) < 1e-15
    # b-tensor b n n^T: rank one, trace b, shape (M, 3, 3)
    btensors = acquisition.btensors()
    assert btensors.shape == (3, 3, 3)
    expected = reference[:, None, None] * DIRECTIONS[:, :, None] * DIRECTIONS[:, None, :]
    assert _relative(btensors, expected) < 1e-12
    assert _relative(pgse_btensor(AMPLITUDES, delta, big_delta, DIRECTIONS), expected) < 1e-15
    assert _relative(acquisition.pieces().btensors(), expected) < 1e-12


def test_double_pgse_bvalue_and_btensor():
    # Each block refocuses separately: b = 2 gamma^2 G^2 delta^2 (Delta - delta/3) and
    # B = b_1 (n1 n1^T + n2 n2^T) for any mixing time (Shemesh et al., NMR Biomed. 2010).
    delta, big_delta = 0.004, 0.02
    pairs = torch.stack([DIRECTIONS, DIRECTIONS.roll(1, dims=0)], dim=1)  # (3, 2, 3)
    for mixing in (0.0, 0.003, 0.05):
        acquisition = Acquisition(DoublePGSE(delta, big_delta, mixing), pairs, AMPLITUDES)
        reference = double_pgse_bvalue(AMPLITUDES, delta, big_delta)
        assert _relative(acquisition.bvalues(), reference) < 1e-12
        expected = double_pgse_btensor(AMPLITUDES, delta, big_delta, pairs)
        assert _relative(acquisition.btensors(), expected) < 1e-12
        assert _relative(acquisition.pieces().btensors(), expected) < 1e-12
        assert torch.allclose(acquisition.btensors().diagonal(dim1=1, dim2=2).sum(-1), reference)
    single = pgse_bvalue(AMPLITUDES, delta, big_delta)
    assert _relative(reference, 2 * single) < 1e-15


@pytest.mark.parametrize("kind", ["cos", "sin"])
@pytest.mark.parametrize("num_periods", [1, 2, 5, 12])
@pytest.mark.parametrize("big_delta", [0.025, 0.04])
def test_ogse_bvalue_matches_closed_form(kind, num_periods, big_delta):
    # Does et al., MRM 49, 206 (2003) and SpinDoctor: b = gamma^2 G^2 delta^3 / (4 pi^2 n^2)
    # (cos) and 3 gamma^2 G^2 delta^3 / (4 pi^2 n^2) (sin), independent of Delta.
    delta = 0.025
    acquisition = Acquisition(OGSE(delta, big_delta, num_periods, kind), DIRECTIONS, AMPLITUDES)
    factor = 1.0 if kind == "cos" else 3.0
    reference = factor * (GAMMA_PROTON * AMPLITUDES) ** 2 * delta**3 / (4 * math.pi**2)
    reference = reference / num_periods**2
    assert _relative(acquisition.bvalues(), reference) < 1e-10
    assert _relative(ogse_bvalue(AMPLITUDES, delta, num_periods, kind), reference) < 1e-14
    outer = DIRECTIONS[:, :, None] * DIRECTIONS[:, None, :]
    assert _relative(acquisition.btensors(), reference[:, None, None] * outer) < 1e-10


@pytest.mark.parametrize("kind, constant", [("cos", 1 / 6), ("sin", 1 / 18)])
def test_ogse_pieces_converge_to_the_exact_bvalue_at_second_order(kind, constant):
    shape = OGSE(0.02, 0.03, 3, kind)
    exact = ogse_bvalue(0.1, 0.02, 3, kind)
    per_period = np.array([8, 16, 32, 64, 128])
    errors = []
    for count in per_period:
        acquisition = Acquisition(shape, [[0.0, 0.0, 1.0]], [0.1])
        time_step = 0.02 / 3 / count
        assert shape.pieces_per_period(time_step) == count
        errors.append(float(1 - acquisition.pieces(time_step).bvalues()[0] / exact))
    errors = np.array(errors)
    assert (errors > 0).all()  # piecewise-linear q underestimates integral of q^2
    rate = -np.polyfit(np.log(per_period), np.log(errors), 1)[0]
    assert rate == pytest.approx(2.0, abs=0.02)
    # leading term (2 pi / m)^2 * constant, stated in DEFAULT_PIECES_PER_PERIOD's docs
    assert errors[-1] == pytest.approx(constant * (2 * math.pi / 128) ** 2, rel=1e-3)


def test_ogse_piece_wavevectors_are_exact_at_boundaries():
    acquisition = Acquisition(OGSE(0.02, 0.03, 4, "sin"), DIRECTIONS, AMPLITUDES)
    pieces = acquisition.pieces(time_step=2e-4)
    ends = torch.cumsum(pieces.durations, 0)
    exact = acquisition.waveform.wavevector_shape(ends)[None, :, 0, None] * (
        GAMMA_PROTON * AMPLITUDES[:, None, None] * DIRECTIONS[:, None, :]
    )
    assert _relative(pieces.wavevectors(), exact) < 1e-12


def _simpson_bvalue(shape, amplitude, time_step):
    """b from Simpson's rule on each sample interval of the (piecewise-linear) wavevector."""
    edges = torch.arange(shape.num_samples + 1, dtype=F64) * time_step
    middles = edges[:-1] + 0.5 * time_step
    q_edges = GAMMA_PROTON * amplitude * shape.wavevector_shape(edges)
    q_middles = GAMMA_PROTON * amplitude * shape.wavevector_shape(middles)
    squares = (q_edges[:-1] ** 2 + 4 * q_middles**2 + q_edges[1:] ** 2).sum(-1)
    return float((time_step / 6 * squares).sum())


def test_sampled_pgse_matches_stejskal_tanner():
    time_step, delta_steps, gap_steps = 1e-4, 40, 100
    samples = torch.cat([torch.ones(delta_steps), torch.zeros(gap_steps), -torch.ones(delta_steps)])
    acquisition = Acquisition(SampledWaveform(samples, time_step), DIRECTIONS, AMPLITUDES)
    delta, big_delta = delta_steps * time_step, (delta_steps + gap_steps) * time_step
    reference = pgse_bvalue(AMPLITUDES, delta, big_delta)
    assert _relative(acquisition.bvalues(), reference) < 1e-10
    assert _relative(acquisition.pieces().bvalues(), reference) < 1e-10


def test_sampled_three_channel_waveform_rotates_as_a_tensor():
    generator = torch.Generator().manual_seed(3)
    samples = torch.randn(50, 3, dtype=F64, generator=generator)
    samples = samples - samples.mean(0)  # refocused in every channel
    shape = SampledWaveform(samples, 2e-4)
    identity = torch.eye(3, dtype=F64)[None]
    rotation = torch.linalg.qr(torch.randn(3, 3, dtype=F64, generator=generator))[0]
    acquisition = Acquisition(shape, torch.cat([identity, rotation.T[None]]), [0.04, 0.04])
    btensors = acquisition.btensors()
    # rows of the direction block are the channel directions: channel c points along R e_c
    assert _relative(btensors[1], rotation @ btensors[0] @ rotation.T) < 1e-12
    assert abs(float(btensors[0].trace()) / _simpson_bvalue(shape, 0.04, 2e-4) - 1) < 1e-12
    assert _relative(acquisition.pieces().btensors(), btensors) < 1e-12
    eigenvalues = torch.linalg.eigvalsh(btensors[0])
    assert bool((eigenvalues > 0).all())  # a general 3-D waveform gives a full-rank b-tensor


@pytest.mark.parametrize(
    "shape",
    [
        PGSE(0.01, 0.03),
        DoublePGSE(0.004, 0.02, 0.003),
        SampledWaveform(
            torch.randn(40, 2, dtype=F64, generator=torch.Generator().manual_seed(1)), 5e-4
        ),
    ],
    ids=["pgse", "double-pgse", "sampled"],
)
def test_quadrature_and_exact_piecewise_grams_agree(shape):
    # Gauss-Legendre on the closed-form wavevector (used for smooth shapes) against the exact
    # piecewise formula: two independent routes to integral F F^T dt.
    exact = piecewise_gram(*shape.pieces())
    assert _relative(quadrature_gram(shape), exact) < 1e-13


def test_echo_time_appends_zero_gradient_piece():
    # a waveform that is not refocused keeps q = gamma G T after it ends, so
    # b = gamma^2 G^2 (T^3 / 3 + T^2 (TE - T)) for a constant lobe of length T
    shape = SampledWaveform(torch.ones(10, dtype=F64), 1e-3)
    acquisition = Acquisition(
        shape, [[0.0, 1.0, 0.0]], [0.02], echo_time=0.025, allow_unrefocused=True
    )
    total = 0.01
    reference = (GAMMA_PROTON * 0.02) ** 2 * (total**3 / 3 + total**2 * 0.015)
    assert float(acquisition.bvalues()[0]) == pytest.approx(reference, rel=1e-12)
    pieces = acquisition.pieces()
    assert pieces.num_pieces == 11 and float(pieces.echo_time) == pytest.approx(0.025)
    assert float(pieces.bvalues()[0]) == pytest.approx(reference, rel=1e-12)
    # a refocused PGSE keeps its b-value; an echo time equal to the duration adds nothing
    pgse = PGSE(0.01, 0.03)
    late = Acquisition(pgse, DIRECTIONS, AMPLITUDES, echo_time=0.06)
    assert _relative(late.bvalues(), pgse_bvalue(AMPLITUDES, 0.01, 0.03)) < 1e-12
    assert Acquisition(pgse, DIRECTIONS, AMPLITUDES, echo_time=0.04).pieces().num_pieces == 3


@pytest.mark.parametrize(
    "shape",
    [PGSE(0.01, 0.03), OGSE(0.02, 0.03, 2, "cos"), OGSE(0.02, 0.03, 3, "sin")],
    ids=["pgse", "cos-ogse", "sin-ogse"],
)
def test_from_bvalues_reaches_the_requested_bvalues(shape):
    bvalues = torch.tensor([0.0, 1e9, 2.5e9], dtype=F64)
    directions = torch.cat([torch.zeros(1, 3, dtype=F64), DIRECTIONS[1:]])
    acquisition = Acquisition.from_bvalues(shape, bvalues, directions)
    assert float(acquisition.amplitudes[0]) == 0.0
    assert torch.allclose(acquisition.bvalues(), bvalues, rtol=1e-12, atol=0)
    assert acquisition.num_measurements == 3


def test_from_bvalues_double_pgse_uses_both_blocks():
    pairs = torch.stack([DIRECTIONS, DIRECTIONS.flip(0)], dim=1)
    shape = DoublePGSE(0.005, 0.02, 0.01)
    acquisition = Acquisition.from_bvalues(shape, torch.full((3,), 2e9, dtype=F64), pairs)
    single = pgse_bvalue(acquisition.amplitudes, 0.005, 0.02)
    assert torch.allclose(2 * single, torch.full((3,), 2e9, dtype=F64), rtol=1e-12)


def test_multi_shell_layout():
    acquisition = multi_shell(PGSE(0.01, 0.03), [0.0, 1e9, 3e9], [1, 6, 10])
    assert acquisition.num_measurements == 17
    bvalues = acquisition.bvalues()
    assert float(bvalues[0]) == 0.0
    assert torch.allclose(bvalues[1:7], torch.full((6,), 1e9, dtype=F64), rtol=1e-12)
    assert torch.allclose(bvalues[7:], torch.full((10,), 3e9, dtype=F64), rtol=1e-12)
    norms = torch.linalg.vector_norm(acquisition.directions[1:, 0], dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-12)
    fibonacci = multi_shell(PGSE(0.01, 0.03), [2e9], 30, scheme="fibonacci")
    # a uniform half-sphere set has a nearly isotropic mean b-tensor: b/3 I
    mean = fibonacci.btensors().mean(0)
    assert torch.allclose(mean, 2e9 / 3 * torch.eye(3, dtype=F64), atol=0.02 * 2e9)
