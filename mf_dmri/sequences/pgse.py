"""Pulsed-gradient spin-echo shapes: PGSE (Stejskal & Tanner 1965) and double PGSE.

Both are piecewise constant, so :meth:`pieces` is exact and never subdivides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mf_dmri._checks import DTYPE, positive_scalar
from mf_dmri.plausibility import Plausibility, check_plausible
from mf_dmri.sequences.shape import WaveformShape, as_times, clamp_between, drop_empty_pieces


def _check_timing(pulse_duration: torch.Tensor, pulse_separation: torch.Tensor) -> None:
    if float(pulse_duration.detach()) > float(pulse_separation.detach()):
        raise ValueError(
            f"pulse_duration ({float(pulse_duration):.6g} s) exceeds pulse_separation "
            f"({float(pulse_separation):.6g} s), so the two lobes overlap; choose "
            "pulse_separation >= pulse_duration (pulse_separation is measured from the start "
            "of the first lobe to the start of the second)"
        )


def check_timing_plausible(shape, plausibility: Plausibility | None) -> None:
    """Pulse duration and separation against the ranges of ``mf_dmri.plausibility``."""
    check_plausible(
        "pulse_duration", shape.pulse_duration, "pulse_duration", plausibility, stacklevel=5
    )
    check_plausible(
        "diffusion_time", shape.pulse_separation, "pulse_separation", plausibility, stacklevel=5
    )


def _pgse_wavevector(times: torch.Tensor, delta: torch.Tensor, big_delta: torch.Tensor):
    """Integral of the unit PGSE shape from 0 to t [s], starting at time 0."""
    return clamp_between(times, torch.zeros_like(delta), delta) - clamp_between(
        times, big_delta, delta
    )


@dataclass(frozen=True, eq=False)
class PGSE(WaveformShape):
    """Pulsed-gradient spin echo (Stejskal & Tanner, J. Chem. Phys. 42, 288, 1965).

    One channel: +1 on [0, delta), 0 on [delta, Delta), -1 on [Delta, Delta + delta).

    Args:
        pulse_duration: duration delta of each gradient lobe [s], positive.
        pulse_separation: time Delta between the starts of the two lobes [s],
            ``pulse_separation >= pulse_duration``.
        plausibility: override of the range checks (``mf_dmri.plausibility``), keyword.
    """

    pulse_duration: torch.Tensor
    pulse_separation: torch.Tensor
    plausibility: Plausibility | None = field(default=None, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        delta = positive_scalar(self.pulse_duration, "pulse_duration", "s")
        big_delta = positive_scalar(self.pulse_separation, "pulse_separation", "s")
        big_delta = big_delta.to(delta.device)
        _check_timing(delta, big_delta)
        object.__setattr__(self, "pulse_duration", delta)
        object.__setattr__(self, "pulse_separation", big_delta)
        check_timing_plausible(self, self.plausibility)

    @property
    def num_channels(self) -> int:
        return 1

    @property
    def duration(self) -> torch.Tensor:
        return self.pulse_separation + self.pulse_duration

    @property
    def is_piecewise_constant(self) -> bool:
        return True

    def pieces(self, time_step: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Exactly three pieces (two when Delta == delta): durations (P,) [s], values (P, 1).

        ``time_step`` [s] is ignored: the representation is exact.
        """
        delta, big_delta = self.pulse_duration, self.pulse_separation
        unit = torch.ones(1, dtype=DTYPE, device=delta.device)
        return drop_empty_pieces(
            [delta, big_delta - delta, delta],
            [unit, 0.0 * unit, -unit],
            ["first lobe", "gap between the lobes", "second lobe"],
        )

    def wavevector_shape(self, times: torch.Tensor) -> torch.Tensor:
        times = as_times(times, self.pulse_duration)
        return _pgse_wavevector(times, self.pulse_duration, self.pulse_separation)[..., None]

    def quadrature_breakpoints(self) -> torch.Tensor:
        delta, big_delta = self.pulse_duration, self.pulse_separation
        return torch.stack([torch.zeros_like(delta), delta, big_delta, big_delta + delta])


@dataclass(frozen=True, eq=False)
class DoublePGSE(WaveformShape):
    """Double pulsed-gradient spin echo: two PGSE blocks in a row (Shemesh et al., NMR
    Biomed. 23, 757, 2010), each with its own channel so that each block can have its own
    direction.

    Channel 0 is the first PGSE block on [0, Delta + delta); channel 1 the second block,
    starting ``mixing_time`` after the end of the first.

    Args:
        pulse_duration: duration delta of each of the four lobes [s], positive.
        pulse_separation: time Delta between the starts of the two lobes of a block [s],
            ``pulse_separation >= pulse_duration``.
        mixing_time: time from the end of block 1 to the start of block 2 [s], >= 0.
        plausibility: override of the range checks (``mf_dmri.plausibility``), keyword.
    """

    pulse_duration: torch.Tensor
    pulse_separation: torch.Tensor
    mixing_time: torch.Tensor
    plausibility: Plausibility | None = field(default=None, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        delta = positive_scalar(self.pulse_duration, "pulse_duration", "s")
        big_delta = positive_scalar(self.pulse_separation, "pulse_separation", "s")
        mixing = positive_scalar(self.mixing_time, "mixing_time", "s", allow_zero=True)
        _check_timing(delta, big_delta)
        object.__setattr__(self, "pulse_duration", delta)
        object.__setattr__(self, "pulse_separation", big_delta.to(delta.device))
        object.__setattr__(self, "mixing_time", mixing.to(delta.device))
        check_timing_plausible(self, self.plausibility)

    @property
    def num_channels(self) -> int:
        return 2

    @property
    def block_duration(self) -> torch.Tensor:
        """Duration of one PGSE block, Delta + delta [s]."""
        return self.pulse_separation + self.pulse_duration

    @property
    def second_block_start(self) -> torch.Tensor:
        """Start of the second block, Delta + delta + mixing_time [s]."""
        return self.block_duration + self.mixing_time

    @property
    def duration(self) -> torch.Tensor:
        return self.second_block_start + self.block_duration

    @property
    def is_piecewise_constant(self) -> bool:
        return True

    def pieces(self, time_step: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Seven pieces (fewer when a gap is empty): durations (P,) [s], values (P, 2).

        ``time_step`` [s] is ignored: the representation is exact.
        """
        delta, big_delta = self.pulse_duration, self.pulse_separation
        first = torch.tensor([1.0, 0.0], dtype=DTYPE, device=delta.device)
        second = torch.tensor([0.0, 1.0], dtype=DTYPE, device=delta.device)
        zero = 0.0 * first
        gap = big_delta - delta
        return drop_empty_pieces(
            [delta, gap, delta, self.mixing_time, delta, gap, delta],
            [first, zero, -first, zero, second, zero, -second],
            [
                "first lobe of block 1",
                "gap between the lobes of block 1",
                "second lobe of block 1",
                "mixing time",
                "first lobe of block 2",
                "gap between the lobes of block 2",
                "second lobe of block 2",
            ],
        )

    def wavevector_shape(self, times: torch.Tensor) -> torch.Tensor:
        times = as_times(times, self.pulse_duration)
        delta, big_delta = self.pulse_duration, self.pulse_separation
        first = _pgse_wavevector(times, delta, big_delta)
        second = _pgse_wavevector(times - self.second_block_start, delta, big_delta)
        return torch.stack([first, second], dim=-1)

    def quadrature_breakpoints(self) -> torch.Tensor:
        delta, big_delta = self.pulse_duration, self.pulse_separation
        start = self.second_block_start
        zero = torch.zeros_like(delta)
        return torch.stack(
            [zero, delta, big_delta, self.block_duration]
            + [start, start + delta, start + big_delta, start + self.block_duration]
        )
