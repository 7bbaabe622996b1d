"""Oscillating-gradient spin echo (Does, Parsons & Gore, Magn. Reson. Med. 49, 206, 2003).

Two oscillating lobes of duration delta, the second the sign-flipped copy of the first
(the refocusing pulse applied), as in SpinDoctor (Li et al., NeuroImage 2019):

    f(t) =  w(2 pi n t / delta)            on [0, delta)
    f(t) = -w(2 pi n (t - Delta) / delta)  on [Delta, Delta + delta)

with ``w = cos`` or ``w = sin`` and ``n`` periods per lobe.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import torch

from mf_dmri._checks import DTYPE, positive_scalar
from mf_dmri.plausibility import Plausibility, check_plausible
from mf_dmri.sequences.pgse import _check_timing, check_timing_plausible
from mf_dmri.sequences.shape import WaveformShape, as_times, clamp_between

#: default number of pieces per oscillation period in :meth:`OGSE.pieces`.  The b-value of
#: the piecewise-constant representation underestimates the exact one by a relative
#: (2 pi / m)^2 / 6 (cos) or (2 pi / m)^2 / 18 (sin) for m pieces per period: 4.0e-4 and
#: 1.3e-4 with the default.  Pass a time_step for a finer (or coarser) representation.
DEFAULT_PIECES_PER_PERIOD = 128

_KINDS = ("cos", "sin")


def _quarter_period_averages(kind: str, pieces_per_period: int) -> torch.Tensor:
    """Exact averages of w over the first pieces_per_period/4 equal pieces of a period."""
    half_width = math.pi / pieces_per_period
    quarter = pieces_per_period // 4
    centres = (2 * torch.arange(quarter, dtype=DTYPE) + 1) * half_width
    sinc = math.sin(half_width) / half_width
    return (torch.cos(centres) if kind == "cos" else torch.sin(centres)) * sinc


def period_averages(kind: str, pieces_per_period: int) -> torch.Tensor:
    """Averages of w over the equal pieces of one period, (pieces_per_period,) [-].

    Built from the first quarter by the symmetries of cos and sin so that repeated values
    (and sign flips) are bitwise identical.  ``pieces_per_period`` must be a multiple of 4.
    """
    first = _quarter_period_averages(kind, pieces_per_period)
    mirrored = torch.flip(first, dims=[0])
    if kind == "cos":
        return torch.cat([first, -mirrored, -first, mirrored])
    return torch.cat([first, mirrored, -first, -mirrored])


@dataclass(frozen=True, eq=False)
class OGSE(WaveformShape):
    """Cosine or sine oscillating-gradient spin echo with one channel.

    Args:
        pulse_duration: duration delta of each oscillating lobe [s], positive.
        pulse_separation: time Delta between the starts of the two lobes [s],
            ``pulse_separation >= pulse_duration``.
        num_periods: number n of oscillation periods per lobe [-], a positive integer.
        kind: ``"cos"`` or ``"sin"``.
        plausibility: override of the range checks (``mf_dmri.plausibility``), keyword;
            the frequency ``num_periods / pulse_duration`` [Hz] is checked too.
    """

    pulse_duration: torch.Tensor
    pulse_separation: torch.Tensor
    num_periods: int
    kind: str = "cos"
    plausibility: Plausibility | None = field(default=None, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        delta = positive_scalar(self.pulse_duration, "pulse_duration", "s")
        big_delta = positive_scalar(self.pulse_separation, "pulse_separation", "s")
        big_delta = big_delta.to(delta.device)
        _check_timing(delta, big_delta)
        if isinstance(self.num_periods, bool):
            raise TypeError("num_periods must be a positive integer, got a bool")
        try:
            num_periods = operator.index(self.num_periods)
        except TypeError as exc:
            raise TypeError(
                f"num_periods must be a positive integer, got {self.num_periods!r}; "
                "pass an int such as 2"
            ) from exc
        if num_periods < 1:
            raise ValueError(f"num_periods must be a positive integer, got {num_periods}")
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be 'cos' or 'sin', got {self.kind!r}")
        object.__setattr__(self, "pulse_duration", delta)
        object.__setattr__(self, "pulse_separation", big_delta)
        object.__setattr__(self, "num_periods", num_periods)
        check_timing_plausible(self, self.plausibility)
        frequency = num_periods / float(delta.detach())
        check_plausible("frequency", frequency, "num_periods / pulse_duration", self.plausibility)

    @property
    def num_channels(self) -> int:
        return 1

    @property
    def duration(self) -> torch.Tensor:
        return self.pulse_separation + self.pulse_duration

    @property
    def period(self) -> torch.Tensor:
        """Oscillation period delta / n [s]."""
        return self.pulse_duration / self.num_periods

    @property
    def is_piecewise_constant(self) -> bool:
        return False

    def pieces_per_period(self, time_step: float | None = None) -> int:
        """Pieces per period used by :meth:`pieces`: ``DEFAULT_PIECES_PER_PERIOD`` without
        ``time_step``, otherwise the smallest multiple of 4 making pieces <= time_step [s]."""
        if time_step is None:
            return DEFAULT_PIECES_PER_PERIOD
        if not (isinstance(time_step, int | float) and math.isfinite(time_step)) or not (
            time_step > 0
        ):
            raise ValueError(f"time_step must be a positive number [s], got {time_step!r}")
        period = float(self.period.detach())
        return 4 * max(1, math.ceil(period / (4.0 * time_step) * (1 - 1e-12)))

    def piece_length(self, time_step: float | None = None) -> float:
        """Length [s] of the equal pieces of the lobes at ``time_step`` [s] (see
        :meth:`pieces_per_period`)."""
        return float(self.period.detach()) / self.pieces_per_period(time_step)

    def pieces(self, time_step: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Equal pieces no longer than ``time_step`` [s] holding the exact average of the
        shape over each piece, so q(t) is exact at every piece boundary.

        Without ``time_step``, ``DEFAULT_PIECES_PER_PERIOD`` pieces per period.  Periods are
        exact repeats and the second lobe is the exact negative of the first.
        Returns durations (P,) [s] and values (P, 1) [-].
        """
        per_period = self.pieces_per_period(time_step)
        delta, big_delta = self.pulse_duration, self.pulse_separation
        device = delta.device
        lobe = period_averages(self.kind, per_period).to(device).repeat(self.num_periods)
        count = lobe.numel()
        piece = (delta / count).repeat(count)
        gap = big_delta - delta
        if float(gap.detach()) > 0:
            durations = torch.cat([piece, gap[None], piece])
            values = torch.cat([lobe, torch.zeros(1, dtype=DTYPE, device=device), -lobe])
        elif gap.requires_grad:
            raise ValueError(
                "the gap between the lobes has zero length, so its derivative cannot be "
                "represented by piecewise-constant gradients; choose pulse_separation > "
                "pulse_duration or detach the timings"
            )
        else:
            durations, values = torch.cat([piece, piece]), torch.cat([lobe, -lobe])
        return durations, values[:, None]

    def wavevector_shape(self, times: torch.Tensor) -> torch.Tensor:
        times = as_times(times, self.pulse_duration)
        delta = self.pulse_duration
        frequency = 2 * math.pi * self.num_periods / delta
        first = frequency * clamp_between(times, torch.zeros_like(delta), delta)
        second = frequency * clamp_between(times, self.pulse_separation, delta)
        if self.kind == "cos":
            value = torch.sin(first) - torch.sin(second)
        else:
            value = torch.cos(second) - torch.cos(first)
        return (value / frequency)[..., None]

    def quadrature_breakpoints(self) -> torch.Tensor:
        delta = self.pulse_duration
        fractions = torch.linspace(0.0, 1.0, 4 * self.num_periods + 1, dtype=DTYPE)
        lobe = delta * fractions.to(delta.device)
        return torch.cat([lobe, self.pulse_separation + lobe])
