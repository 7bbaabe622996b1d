"""Arbitrary sampled effective-gradient shapes, piecewise constant on a uniform grid."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mf_dmri._checks import DTYPE, as_real_tensor, positive_scalar
from mf_dmri.sequences.shape import WaveformShape, as_times


@dataclass(frozen=True, eq=False)
class SampledWaveform(WaveformShape):
    """Unit-amplitude shape given by samples held constant on intervals of ``time_step``.

    Sample ``k`` holds on [k time_step, (k + 1) time_step).  The samples already carry the
    sign flip of the refocusing pulse (they are the effective gradient shape).  With three
    channels and identity directions in :class:`~mf_dmri.sequences.Acquisition`, the
    channels are the lab x, y, z axes, so any 3-D (e.g. tensor-encoding) waveform can be
    given; a rotation per measurement is then a (3, 3) direction block.

    Args:
        samples: (n,) or (n, C) shape values [-] (the amplitude [T/m] is applied by the
            acquisition); a 1-D array is one channel.
        time_step: duration of each sample [s], positive.
    """

    samples: torch.Tensor
    time_step: torch.Tensor

    def __post_init__(self) -> None:
        time_step = positive_scalar(self.time_step, "time_step", "s")
        samples = as_real_tensor(self.samples, "samples", device=time_step.device)
        if samples.ndim == 1:
            samples = samples[:, None]
        if samples.ndim != 2 or samples.shape[0] == 0 or samples.shape[1] == 0:
            raise ValueError(
                "samples must have shape (n,) or (n, C) with n >= 1 and C >= 1 [-], "
                f"got {tuple(samples.shape)}"
            )
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "time_step", time_step)

    @property
    def num_channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> torch.Tensor:
        return self.time_step * self.num_samples

    @property
    def is_piecewise_constant(self) -> bool:
        return True

    def pieces(self, time_step: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One piece per sample: durations (n,) [s] and values (n, C) [-] (exact).

        ``time_step`` [s] is ignored: the representation is exact.  Runs of equal samples
        are not merged, so the derivative with respect to every sample is kept.
        """
        return self.time_step.repeat(self.num_samples), self.samples

    def wavevector_shape(self, times: torch.Tensor) -> torch.Tensor:
        times = as_times(times, self.time_step)
        step = self.time_step
        clamped = torch.minimum(times.clamp_min(0.0), self.duration)
        index = torch.floor(clamped.detach() / step.detach()).long()
        index = index.clamp(0, self.num_samples - 1)
        before = torch.cumsum(self.samples, dim=0) - self.samples  # sum of samples before k
        elapsed = clamped - index.to(DTYPE) * step
        return step * before[index] + self.samples[index] * elapsed[..., None]

    def quadrature_breakpoints(self) -> torch.Tensor:
        grid = torch.arange(self.num_samples + 1, dtype=DTYPE, device=self.time_step.device)
        return grid * self.time_step
