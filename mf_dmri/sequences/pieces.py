"""Piecewise-constant gradient representation consumed by the signal layer.

Every acquisition is turned into ``GradientPieces``: ``P`` consecutive time intervals of
durations ``durations[p]`` [s], and, for each of ``M`` measurements, the effective gradient
vector ``gradients[m, p]`` [T/m] (the sign flip of the refocusing pulse already applied)
held constant on interval ``p``.  The echo is at the end of the last interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mf_dmri._checks import as_real_tensor, check_positive
from mf_dmri.units import GAMMA_PROTON


@dataclass(frozen=True)
class GradientPieces:
    """Effective gradients held constant on consecutive intervals.

    Args:
        durations: (P,) interval durations [s], positive.
        gradients: (M, P, 3) effective gradient of each measurement on each interval [T/m].
        gyromagnetic_ratio: gyromagnetic ratio of the spins [rad/(s T)].
    """

    durations: torch.Tensor
    gradients: torch.Tensor
    gyromagnetic_ratio: float = GAMMA_PROTON

    def __post_init__(self) -> None:
        durations = as_real_tensor(self.durations, "durations")
        gradients = as_real_tensor(self.gradients, "gradients", device=durations.device)
        if durations.ndim != 1 or durations.numel() == 0:
            raise ValueError("durations must be a non-empty 1-D array [s]")
        check_positive(durations, "durations", "s")
        if gradients.ndim != 3 or gradients.shape[1:] != (durations.numel(), 3):
            raise ValueError(
                f"gradients must have shape (M, {durations.numel()}, 3) [T/m], "
                f"got {tuple(gradients.shape)}"
            )
        if not self.gyromagnetic_ratio > 0:
            raise ValueError("gyromagnetic_ratio must be positive [rad/(s T)]")
        object.__setattr__(self, "durations", durations)
        object.__setattr__(self, "gradients", gradients)

    @property
    def num_measurements(self) -> int:
        return int(self.gradients.shape[0])

    @property
    def num_pieces(self) -> int:
        return int(self.durations.numel())

    @property
    def echo_time(self) -> torch.Tensor:
        """Total duration [s] (the echo is at the end of the last piece)."""
        return self.durations.sum()

    def wavevectors(self) -> torch.Tensor:
        """q(t) = gamma * integral of g at the end of each piece, shape (M, P, 3) [rad/m]."""
        steps = self.gradients * self.durations[None, :, None]
        return self.gyromagnetic_ratio * torch.cumsum(steps, dim=1)

    def bvalues(self) -> torch.Tensor:
        """b = integral of |q(t)|^2 dt, exact for piecewise-constant gradients, (M,) [s/m^2]."""
        return self.btensors().diagonal(dim1=-2, dim2=-1).sum(-1)

    def btensors(self) -> torch.Tensor:
        """B = integral of q(t) q(t)^T dt, exact for piecewise-constant gradients,
        (M, 3, 3) [s/m^2]."""
        tau = self.durations[None, :, None, None]
        q_end = self.wavevectors()
        q_start = q_end - self.gyromagnetic_ratio * self.gradients * self.durations[None, :, None]
        # q(t) is linear on each piece: integral of q q^T = tau/3 (a a^T + a b^T/2 + b a^T/2
        # + b b^T) with a, b the start and end values.
        outer = lambda u, v: u[..., :, None] * v[..., None, :]  # noqa: E731
        per_piece = (
            tau
            / 3.0
            * (
                outer(q_start, q_start)
                + outer(q_end, q_end)
                + 0.5 * (outer(q_start, q_end) + outer(q_end, q_start))
            )
        )
        return per_piece.sum(dim=1)
