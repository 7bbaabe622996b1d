"""Derivatives of b-values w.r.t. timings, amplitudes and samples vs central differences."""

import pytest
import torch

from mf_dmri.sequences import OGSE, PGSE, Acquisition, DoublePGSE, SampledWaveform

F64 = torch.float64
DIRECTIONS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]], dtype=F64)


def _leaf(value):
    return torch.tensor(value, dtype=F64, requires_grad=True)


def _central_difference(function, value: float, relative_step: float = 1e-5) -> float:
    step = relative_step * abs(value)
    return (function(value + step) - function(value - step)) / (2 * step)


def _check(function, values: dict, path: str):
    """Autograd of sum(b) w.r.t. each named scalar vs central differences, 1e-6 relative."""
    leaves = {name: _leaf(value) for name, value in values.items()}
    total = function(**leaves, path=path).sum()
    gradients = torch.autograd.grad(total, list(leaves.values()))
    for (name, value), gradient in zip(values.items(), gradients, strict=True):

        def shifted(x, name=name):
            arguments = dict(values, **{name: x})
            with torch.no_grad():
                return float(function(**arguments, path=path).sum())

        reference = _central_difference(shifted, value)
        # absolute floor for derivatives that vanish (OGSE b does not depend on Delta)
        floor = 1e-9 * float(total.detach()) / value
        assert float(gradient) == pytest.approx(reference, rel=1e-6, abs=floor), name


def _bvalues(acquisition, path):
    return acquisition.bvalues() if path == "gram" else acquisition.pieces().bvalues()


def _pgse(pulse_duration, pulse_separation, amplitude, path):
    amplitudes = torch.as_tensor(amplitude, dtype=F64) * torch.tensor([1.0, 0.5], dtype=F64)
    acquisition = Acquisition(PGSE(pulse_duration, pulse_separation), DIRECTIONS, amplitudes)
    return _bvalues(acquisition, path)


@pytest.mark.parametrize("path", ["gram", "pieces"])
def test_pgse_bvalue_gradients(path):
    _check(_pgse, {"pulse_duration": 0.008, "pulse_separation": 0.03, "amplitude": 0.06}, path)


def _double(pulse_duration, pulse_separation, mixing_time, echo_time, path):
    pairs = torch.stack([DIRECTIONS, DIRECTIONS.flip(0)], dim=1)
    shape = DoublePGSE(pulse_duration, pulse_separation, mixing_time)
    acquisition = Acquisition(shape, pairs, [0.05, 0.02], echo_time=echo_time)
    return _bvalues(acquisition, path)


@pytest.mark.parametrize("path", ["gram", "pieces"])
def test_double_pgse_bvalue_gradients(path):
    values = {"pulse_duration": 0.005, "pulse_separation": 0.02, "echo_time": 0.09}
    _check(lambda **kw: _double(mixing_time=0.01, **kw), values, path)
    # b does not depend on the mixing time: its derivative is zero
    mixing = _leaf(0.01)
    total = _double(0.005, 0.02, mixing, None, path).sum()
    (gradient,) = torch.autograd.grad(total, [mixing])
    assert abs(float(gradient)) < 1e-9 * float(total.detach()) / 0.01


def _ogse(pulse_duration, pulse_separation, path, kind="cos"):
    acquisition = Acquisition(
        OGSE(pulse_duration, pulse_separation, 3, kind), DIRECTIONS, [0.1, 0.2]
    )
    return _bvalues(acquisition, path)


@pytest.mark.parametrize("kind", ["cos", "sin"])
@pytest.mark.parametrize("path", ["gram", "pieces"])
def test_ogse_bvalue_gradients(kind, path):
    values = {"pulse_duration": 0.02, "pulse_separation": 0.03}
    _check(lambda **kw: _ogse(kind=kind, **kw), values, path)


def test_sampled_waveform_gradients_wrt_samples_and_time_step():
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(12, 2, dtype=F64, generator=generator)
    directions = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]], dtype=F64)

    def bvalue(samples, time_step, echo_time):
        shape = SampledWaveform(samples, time_step)
        acquisition = Acquisition(
            shape, directions, [0.03], echo_time=echo_time, allow_unrefocused=True
        )
        return acquisition.bvalues()[0]

    samples = base.clone().requires_grad_(True)
    time_step, echo_time = _leaf(1e-3), _leaf(0.02)
    gradients = torch.autograd.grad(
        bvalue(samples, time_step, echo_time), [samples, time_step, echo_time]
    )
    for index in [(0, 0), (5, 1), (11, 0)]:

        def shifted(x, index=index):
            perturbed = base.clone()
            perturbed[index] = x
            return float(bvalue(perturbed, 1e-3, 0.02))

        reference = _central_difference(shifted, float(base[index]))
        assert float(gradients[0][index]) == pytest.approx(reference, rel=1e-6)
    arguments = {"samples": base, "time_step": 1e-3, "echo_time": 0.02}
    for position, (name, value) in enumerate([("time_step", 1e-3), ("echo_time", 0.02)], 1):

        def shifted(x, name=name):
            return float(bvalue(**dict(arguments, **{name: x})))

        reference = _central_difference(shifted, value)
        assert float(gradients[position]) == pytest.approx(reference, rel=1e-6), name


def test_from_bvalues_gradient_is_finite_at_zero_b():
    bvalues = torch.tensor([0.0, 1e9, 2e9], dtype=F64, requires_grad=True)
    directions = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]], dtype=F64)
    acquisition = Acquisition.from_bvalues(PGSE(0.01, 0.03), bvalues, directions)
    (through_b,) = torch.autograd.grad(acquisition.bvalues().sum(), [bvalues], retain_graph=True)
    assert bool(torch.isfinite(through_b).all())
    # for b > 0 the round trip b -> amplitude -> b is the identity
    assert torch.allclose(through_b[1:], torch.ones(2, dtype=F64), rtol=1e-12)
    (through_amplitude,) = torch.autograd.grad(
        acquisition.amplitudes.sum(), [bvalues], retain_graph=True
    )
    assert bool(torch.isfinite(through_amplitude).all())
    assert float(through_amplitude[0]) == 0.0
    pieces = acquisition.pieces()
    (through_pieces,) = torch.autograd.grad(pieces.gradients.sum(), [bvalues])
    assert bool(torch.isfinite(through_pieces).all())
