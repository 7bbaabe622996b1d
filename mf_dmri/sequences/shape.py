"""Common interface of unit-amplitude effective-gradient shapes, and shared helpers.

A shape ``f(t)`` has ``C`` channels, is dimensionless (unit amplitude) and already carries
the sign flip of the 180-degree refocusing pulse.  An acquisition scales it by an
amplitude [T/m] and points each channel along a direction, so the effective gradient of
measurement ``m`` is ``g_m(t) = amplitude_m * sum_c f_c(t) direction_{m,c}``.
"""

from __future__ import annotations

import abc

import torch

from mf_dmri._checks import DTYPE


class WaveformShape(abc.ABC):
    """Unit-amplitude effective-gradient shape with ``num_channels`` channels."""

    @property
    @abc.abstractmethod
    def num_channels(self) -> int:
        """Number of channels ``C``."""

    @property
    @abc.abstractmethod
    def duration(self) -> torch.Tensor:
        """End of the last gradient lobe [s]; the default echo time."""

    @property
    @abc.abstractmethod
    def is_piecewise_constant(self) -> bool:
        """True when :meth:`pieces` is an exact representation of the shape."""

    @abc.abstractmethod
    def pieces(self, time_step: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Piecewise-constant representation: durations (P,) [s] and values (P, C) [-]."""

    def piece_length(self, time_step: float | None = None) -> float | None:
        """Length [s] of the pieces that :meth:`pieces` cuts the smooth parts of the shape
        into at ``time_step`` [s]; None when the pieces are exact (piecewise-constant
        shapes), so that no time step changes the signal."""
        return None

    @abc.abstractmethod
    def wavevector_shape(self, times: torch.Tensor) -> torch.Tensor:
        """Integral of the shape from 0 to each time: (..., C) [s] for times (...,) [s]."""

    @abc.abstractmethod
    def quadrature_breakpoints(self) -> torch.Tensor:
        """Sorted times [s] from 0 to :attr:`duration` between which ``wavevector_shape`` is
        smooth and varies by at most a quarter oscillation (used by Gauss-Legendre rules)."""


def drop_empty_pieces(
    durations: list[torch.Tensor], values: list[torch.Tensor], names: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack pieces, leaving out those of zero duration.

    ``GradientPieces`` needs positive durations, so an empty gap (``Delta == delta`` or a
    zero mixing time) is left out.  An empty gap cannot carry a derivative with respect to
    its own length, so a zero duration that requires grad is refused rather than silently
    giving a wrong gradient.
    """
    kept_durations, kept_values = [], []
    for duration, value, name in zip(durations, values, names, strict=True):
        if float(duration.detach()) > 0:
            kept_durations.append(duration)
            kept_values.append(value)
        elif duration.requires_grad:
            raise ValueError(
                f"the {name} has zero length, so its derivative cannot be represented by "
                "piecewise-constant gradients; make it positive (e.g. pulse_separation > "
                "pulse_duration) or detach the timings"
            )
    return torch.stack(kept_durations), torch.stack(kept_values)


def clamp_between(times: torch.Tensor, start: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Time elapsed inside the window [start, start + length] [s]: clamp(t - start, 0, length).

    Written with minimum/maximum so that gradients flow to tensor window bounds.
    """
    zero = torch.zeros((), dtype=DTYPE, device=times.device)
    return torch.minimum(torch.maximum(times - start, zero), length)


def as_times(times: torch.Tensor | float, reference: torch.Tensor) -> torch.Tensor:
    """Times as a float64 tensor on the device of ``reference``."""
    return torch.as_tensor(times, dtype=DTYPE, device=reference.device)
