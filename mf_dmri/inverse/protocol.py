"""Multi-shell PGSE protocols as differentiable design variables, and measurement groups.

A protocol may mix timings (one ``GradientPieces`` per timing), so the models evaluate a
tuple of piece groups and concatenate the signals, in the order given here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mf_dmri._checks import DTYPE, as_real_tensor, check_positive
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.units import GAMMA_PROTON


def as_piece_groups(protocol: Any) -> tuple[GradientPieces, ...]:
    """The measurement groups of ``protocol``: ``GradientPieces``, an object with
    ``piece_groups()`` (``PGSEProtocol``) or ``pieces()`` (an ``Acquisition``), or a
    list of those (concatenated in order)."""
    if isinstance(protocol, GradientPieces):
        return (protocol,)
    if hasattr(protocol, "piece_groups"):
        return tuple(protocol.piece_groups())
    if hasattr(protocol, "pieces"):
        return (protocol.pieces(),)
    if isinstance(protocol, (list, tuple)) and protocol:
        return tuple(g for item in protocol for g in as_piece_groups(item))
    raise TypeError(
        "protocol must be GradientPieces, a PGSEProtocol, an Acquisition or a non-empty list "
        f"of those, got {type(protocol).__name__}"
    )


def stejskal_tanner_amplitude(
    bvalue: torch.Tensor,
    pulse_duration: torch.Tensor,
    pulse_separation: torch.Tensor,
    gyromagnetic_ratio: float = GAMMA_PROTON,
) -> torch.Tensor:
    """PGSE gradient amplitude [T/m] for b = gamma^2 G^2 delta^2 (Delta - delta/3) [s/m^2]
    (Stejskal and Tanner 1965, J. Chem. Phys. 42, 288); times in [s]."""
    return torch.sqrt(
        bvalue
        / (gyromagnetic_ratio**2 * pulse_duration**2 * (pulse_separation - pulse_duration / 3))
    )


@dataclass(frozen=True)
class PGSEProtocol:
    """Rectangular-pulse PGSE shells sharing one set of gradient directions.

    Measurements are ordered: ``b0_measurements`` without gradient, then shell by shell,
    direction by direction.  All tensors may carry autograd history (protocol design).

    Args:
        pulse_duration: (S,) gradient pulse duration delta per shell [s].
        pulse_separation: (S,) pulse onset separation Delta per shell [s], >= delta.
        gradient_amplitude: (S,) gradient amplitude per shell [T/m], >= 0.
        directions: (N, 3) gradient directions [-] (normalised here).
        b0_measurements: number of measurements without diffusion weighting.
        gyromagnetic_ratio: [rad/(s T)].
    """

    pulse_duration: torch.Tensor
    pulse_separation: torch.Tensor
    gradient_amplitude: torch.Tensor
    directions: torch.Tensor
    b0_measurements: int = 0
    gyromagnetic_ratio: float = GAMMA_PROTON

    def __post_init__(self) -> None:
        delta = as_real_tensor(self.pulse_duration, "pulse_duration").reshape(-1)
        separation = as_real_tensor(self.pulse_separation, "pulse_separation").reshape(-1)
        amplitude = as_real_tensor(self.gradient_amplitude, "gradient_amplitude").reshape(-1)
        if not delta.numel() == separation.numel() == amplitude.numel() >= 1:
            raise ValueError(
                "pulse_duration, pulse_separation and gradient_amplitude need one entry per "
                f"shell, got {delta.numel()}, {separation.numel()}, {amplitude.numel()}"
            )
        check_positive(delta, "pulse_duration", "s")
        check_positive(amplitude, "gradient_amplitude", "T/m", allow_zero=True)
        if bool((separation.detach() < delta.detach()).any()):
            raise ValueError(
                "pulse_separation (Delta) must be >= pulse_duration (delta) in every shell; "
                f"got Delta={separation.detach().tolist()} s, delta={delta.detach().tolist()} s"
            )
        directions = as_real_tensor(self.directions, "directions").reshape(-1, 3)
        norms = torch.linalg.vector_norm(directions.detach(), dim=1)
        if directions.shape[0] == 0 or bool((norms == 0).any()):
            raise ValueError("directions must be a non-empty (N, 3) array of non-zero vectors")
        if not (isinstance(self.b0_measurements, int) and self.b0_measurements >= 0):
            raise ValueError("b0_measurements must be a non-negative integer")
        object.__setattr__(self, "pulse_duration", delta)
        object.__setattr__(self, "pulse_separation", separation)
        object.__setattr__(self, "gradient_amplitude", amplitude)
        object.__setattr__(self, "directions", directions / norms[:, None])

    @classmethod
    def from_bvalues(
        cls,
        bvalues: Sequence[float] | torch.Tensor,
        pulse_duration: Sequence[float] | torch.Tensor,
        pulse_separation: Sequence[float] | torch.Tensor,
        directions: torch.Tensor,
        b0_measurements: int = 0,
    ) -> PGSEProtocol:
        """Shells given by b-values [s/m^2] and timings [s] (amplitudes by Stejskal-Tanner)."""
        b = as_real_tensor(bvalues, "bvalues").reshape(-1)
        check_positive(b, "bvalues", "s/m^2", allow_zero=True)
        delta = as_real_tensor(pulse_duration, "pulse_duration").reshape(-1).expand(b.shape)
        separation = as_real_tensor(pulse_separation, "pulse_separation").reshape(-1)
        separation = separation.expand(b.shape)
        if bool((separation < delta).any()):
            raise ValueError("pulse_separation (Delta) must be >= pulse_duration (delta)")
        amplitude = stejskal_tanner_amplitude(b, delta, separation)
        return cls(delta, separation, amplitude, directions, b0_measurements)

    @property
    def num_shells(self) -> int:
        return int(self.pulse_duration.numel())

    @property
    def num_measurements(self) -> int:
        return self.b0_measurements + self.num_shells * int(self.directions.shape[0])

    def echo_times(self, overhead: float = 0.0) -> torch.Tensor:
        """(S,) echo time per shell: Delta + delta + ``overhead`` [s]."""
        return self.pulse_separation + self.pulse_duration + overhead

    def bvalues(self) -> torch.Tensor:
        """(M,) b-values in measurement order [s/m^2]."""
        return torch.cat([g.bvalues() for g in self.piece_groups()])

    def piece_groups(self) -> tuple[GradientPieces, ...]:
        groups = []
        if self.b0_measurements:
            zeros = torch.zeros(self.b0_measurements, 1, 3, dtype=DTYPE)
            groups.append(
                GradientPieces(self.pulse_duration[:1].detach(), zeros, self.gyromagnetic_ratio)
            )
        for shell in range(self.num_shells):
            groups.append(self._shell_pieces(shell))
        return tuple(groups)

    def _shell_pieces(self, shell: int) -> GradientPieces:
        delta = self.pulse_duration[shell]
        gap = self.pulse_separation[shell] - delta
        lobe = self.gradient_amplitude[shell] * self.directions  # (N, 3)
        if float(gap.detach()) > 0:
            durations = torch.stack([delta, gap, delta])
            gradients = torch.stack([lobe, torch.zeros_like(lobe), -lobe], dim=1)
        else:
            durations = torch.stack([delta, delta])
            gradients = torch.stack([lobe, -lobe], dim=1)
        return GradientPieces(durations, gradients, self.gyromagnetic_ratio)


@dataclass(frozen=True)
class HardwareLimits:
    """Scanner and sequence limits for protocol design.

    Args:
        max_gradient: largest gradient amplitude [T/m].
        max_echo_time: longest echo time [s]; the echo time of a PGSE shell is
            Delta + delta + echo_time_overhead.
        echo_time_overhead: echo time not spent in the diffusion block (excitation,
            refocusing, readout up to the k-space centre) [s].
        min_pulse_duration: shortest gradient pulse (slew-rate limited) [s].
    """

    max_gradient: float
    max_echo_time: float
    echo_time_overhead: float = 0.0
    min_pulse_duration: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("max_gradient", "max_echo_time", "min_pulse_duration"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not self.echo_time_overhead >= 0:
            raise ValueError("echo_time_overhead must be >= 0 [s]")
        if self.diffusion_time_budget <= 2 * self.min_pulse_duration:
            raise ValueError(
                "max_echo_time - echo_time_overhead leaves no room for two pulses of "
                "min_pulse_duration: raise max_echo_time or lower the overhead"
            )

    @property
    def diffusion_time_budget(self) -> float:
        """Longest Delta + delta allowed [s]."""
        return self.max_echo_time - self.echo_time_overhead

    def violations(self, protocol: PGSEProtocol, rtol: float = 1e-9) -> list[str]:
        """Human-readable list of the limits ``protocol`` breaks (empty if none)."""
        problems = []
        amplitude = protocol.gradient_amplitude.detach()
        delta = protocol.pulse_duration.detach()
        total = (protocol.pulse_separation + protocol.pulse_duration).detach()
        if bool((amplitude > self.max_gradient * (1 + rtol)).any()):
            problems.append(f"gradient amplitude {amplitude.max():.4g} T/m > {self.max_gradient}")
        if bool((total > self.diffusion_time_budget * (1 + rtol)).any()):
            problems.append(f"echo time exceeds {self.max_echo_time} s")
        if bool((delta < self.min_pulse_duration * (1 - rtol)).any()):
            problems.append(f"pulse duration below {self.min_pulse_duration} s")
        return problems
