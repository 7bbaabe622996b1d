"""Acquisitions: one waveform shape, per-measurement channel directions and amplitudes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from mf_dmri._checks import (
    DTYPE,
    as_real_tensor,
    check_positive,
    positive_integer,
    positive_scalar,
)
from mf_dmri.plausibility import Plausibility, check_plausible
from mf_dmri.sequences.directions import check_unit_vectors
from mf_dmri.sequences.gram import wavevector_gram
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.sequences.shape import WaveformShape
from mf_dmri.units import GAMMA_PROTON

#: relative tolerance under which an echo time equal to the waveform duration adds no piece
_ECHO_TOLERANCE = 1e-12

#: A channel is refocused when its zeroth moment at the echo is below this fraction of the
#: largest |integral of its shape| over the waveform (round-off of the pieces' sums).
REFOCUS_RTOL = 1e-9


@dataclass(frozen=True)
class ZeroBvalues:
    """The b = 0 rows of an acquisition built by :meth:`Acquisition.from_bvalues` from
    b-values that carry gradients: the amplitude sqrt(b / b_unit) has no derivative at 0,
    so the signal layer adds the exact b-derivatives there
    (:mod:`mf_dmri.signal.zero_bvalue`).

    Args:
        rows: (Z,) indices of the rows (each with a non-zero direction).
        bvalues: (Z,) the given b-values of those rows [s/m^2]: zero, with their graph.
        unit_bvalues: (Z,) b-value of unit amplitude along each row's direction
            [s/(m^2 (T/m)^2)], positive.
    """

    rows: torch.Tensor
    bvalues: torch.Tensor
    unit_bvalues: torch.Tensor


class NotRefocusedError(ValueError):
    """An echo acquisition whose gradient waveform is not refocused at the echo time."""


def check_refocused(waveform: WaveformShape) -> None:
    """Raise :class:`NotRefocusedError` if some channel of the unit shape has a zeroth
    moment integral_0^T shape dt at its end larger than ``REFOCUS_RTOL`` times the largest
    |integral_0^t shape dt| (t <= T): the echo would then be a gradient echo of the phase
    gamma q(TE).x, not a spin echo."""
    durations, values = waveform.pieces(None)
    moments = torch.cumsum(durations.detach()[:, None] * values.detach(), dim=0)  # (P, C) [s]
    scale = moments.abs().amax(dim=0)
    final = moments[-1].abs()
    bad = torch.nonzero(final > REFOCUS_RTOL * scale).flatten().tolist()
    if bad:
        ratios = ", ".join(f"{float(final[c] / scale[c]):.3g}" for c in bad)
        raise NotRefocusedError(
            f"the {type(waveform).__name__} waveform is not refocused: the zeroth moment "
            f"of channel(s) {bad} at the echo is {ratios} of its largest value over the "
            "waveform (it must be 0 for a spin echo: the effective gradient, with the sign "
            "flip of the refocusing pulse applied, must integrate to zero).  Fix the "
            "waveform samples, or pass allow_unrefocused=True if a non-refocused "
            "(gradient-echo) signal with its phase is intended"
        )


def _check_gyromagnetic_ratio(value: float) -> float:
    if isinstance(value, torch.Tensor) or not isinstance(value, int | float):
        raise TypeError(f"gyromagnetic_ratio must be a float [rad/(s T)], got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"gyromagnetic_ratio must be positive and finite [rad/(s T)], got {value!r}"
        )
    return float(value)


def _channel_directions(directions, num_channels: int, allow_zero: torch.Tensor) -> torch.Tensor:
    """Directions as (M, C, 3), accepting (M, 3) for one channel."""
    tensor = as_real_tensor(directions, "directions", device=allow_zero.device)
    if num_channels == 1 and tensor.ndim == 2:
        tensor = tensor[:, None, :]
    if tensor.ndim != 3 or tensor.shape[1:] != (num_channels, 3) or tensor.shape[0] == 0:
        expected = "(M, 3) or (M, 1, 3)" if num_channels == 1 else f"(M, {num_channels}, 3)"
        raise ValueError(
            f"directions must have shape {expected} for a {num_channels}-channel waveform, "
            f"got {tuple(tensor.shape)}"
        )
    return check_unit_vectors(tensor, "directions", allow_zero=allow_zero[:, None])


@dataclass(frozen=True, eq=False)
class Acquisition:
    """A set of M measurements sharing one waveform shape.

    Measurement ``m`` has effective gradient
    ``g_m(t) = amplitudes[m] * sum_c shape_c(t) * directions[m, c]``.

    Args:
        waveform: the unit-amplitude shape (PGSE, DoublePGSE, OGSE, SampledWaveform).
        directions: (M, 3) for one channel or (M, C, 3) unit directions [-]; a direction may
            be the zero vector only where its amplitude is 0 (e.g. b = 0 rows).  Stored as
            (M, C, 3).
        amplitudes: (M,) gradient amplitudes [T/m], >= 0.
        gyromagnetic_ratio: [rad/(s T)].
        echo_time: echo time [s], >= the waveform duration; None means the waveform
            duration.  Beyond the waveform the gradient is zero until the echo.
        allow_unrefocused: accept a waveform whose zeroth moment is not zero at the echo
            (:func:`check_refocused`), keyword; the signal then carries its phase.
        plausibility: override of the range checks of amplitudes and echo time
            (``mf_dmri.plausibility``), keyword.
        zero_bvalues: set by :meth:`from_bvalues` (b = 0 rows whose b-values carry
            gradients), keyword; None otherwise.
    """

    waveform: WaveformShape
    directions: torch.Tensor
    amplitudes: torch.Tensor
    gyromagnetic_ratio: float = GAMMA_PROTON
    echo_time: torch.Tensor | None = None
    allow_unrefocused: bool = field(default=False, kw_only=True)
    plausibility: Plausibility | None = field(default=None, kw_only=True, repr=False)
    zero_bvalues: ZeroBvalues | None = field(default=None, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.waveform, WaveformShape):
            raise TypeError(
                f"waveform must be a WaveformShape (PGSE, DoublePGSE, OGSE, SampledWaveform), "
                f"got {type(self.waveform).__name__}"
            )
        device = self.waveform.duration.device
        amplitudes = as_real_tensor(self.amplitudes, "amplitudes", device=device)
        if amplitudes.ndim != 1 or amplitudes.numel() == 0:
            raise ValueError(
                f"amplitudes must have shape (M,) [T/m], got {tuple(amplitudes.shape)}"
            )
        check_positive(amplitudes, "amplitudes", "T/m", allow_zero=True)
        check_plausible("gradient", amplitudes, "amplitudes", self.plausibility)
        if not isinstance(self.allow_unrefocused, bool):
            raise TypeError(
                f"allow_unrefocused must be True or False, got {self.allow_unrefocused!r}"
            )
        if not self.allow_unrefocused:
            check_refocused(self.waveform)
        directions = _channel_directions(
            self.directions, self.waveform.num_channels, amplitudes.detach() == 0
        )
        if directions.shape[0] != amplitudes.shape[0]:
            raise ValueError(
                f"directions has {directions.shape[0]} measurements but amplitudes has "
                f"{amplitudes.shape[0]}; give one direction set per amplitude"
            )
        object.__setattr__(self, "amplitudes", amplitudes)
        object.__setattr__(self, "directions", directions)
        object.__setattr__(
            self, "gyromagnetic_ratio", _check_gyromagnetic_ratio(self.gyromagnetic_ratio)
        )
        if self.echo_time is not None:
            echo_time = positive_scalar(self.echo_time, "echo_time", "s").to(device)
            duration = float(self.waveform.duration.detach())
            if float(echo_time.detach()) < duration * (1 - _ECHO_TOLERANCE):
                raise ValueError(
                    f"echo_time ({float(echo_time):.6g} s) is shorter than the waveform "
                    f"({duration:.6g} s); lengthen echo_time or pass None for the waveform end"
                )
            object.__setattr__(self, "echo_time", echo_time)
            check_plausible("diffusion_time", echo_time, "echo_time", self.plausibility)

    @property
    def num_measurements(self) -> int:
        return int(self.amplitudes.shape[0])

    @property
    def num_channels(self) -> int:
        return self.waveform.num_channels

    def _trailing_time(self) -> torch.Tensor | None:
        """Zero-gradient time after the waveform up to the echo [s], or None if none."""
        if self.echo_time is None:
            return None
        trailing = self.echo_time - self.waveform.duration
        duration = float(self.waveform.duration.detach())
        if float(trailing.detach()) <= duration * _ECHO_TOLERANCE:
            return None
        return trailing

    def _scaled_directions(self) -> torch.Tensor:
        """amplitude * direction per measurement and channel, (M, C, 3) [T/m]."""
        return self.amplitudes[:, None, None] * self.directions

    def pieces(self, time_step: float | None = None) -> GradientPieces:
        """Piecewise-constant effective gradients (M, P, 3) [T/m] and durations (P,) [s].

        Exact for piecewise-constant shapes; for smooth shapes (OGSE) pieces no longer than
        ``time_step`` [s] holding the shape's exact average (see ``OGSE.pieces``).
        """
        durations, values = self.waveform.pieces(time_step)
        trailing = self._trailing_time()
        if trailing is not None:
            durations = torch.cat([durations, trailing[None]])
            values = torch.cat([values, torch.zeros_like(values[:1])])
        gradients = torch.einsum("pc,mcx->mpx", values, self._scaled_directions())
        return GradientPieces(durations, gradients, self.gyromagnetic_ratio)

    def channel_gram(self) -> torch.Tensor:
        """``integral_0^TE F F^T dt`` (C, C) [s^3] of the unit shape's wavevector F."""
        echo_time = None if self._trailing_time() is None else self.echo_time
        return wavevector_gram(self.waveform, echo_time)

    def btensors(self) -> torch.Tensor:
        """b-tensors ``integral q q^T dt`` (M, 3, 3) [s/m^2]: exact for piecewise-constant
        shapes, Gauss-Legendre quadrature of the closed-form wavevector for smooth ones."""
        gram = self.channel_gram()
        scaled = self._scaled_directions()
        return self.gyromagnetic_ratio**2 * torch.einsum("cd,mci,mdj->mij", gram, scaled, scaled)

    def bvalues(self) -> torch.Tensor:
        """b-values, the traces of :meth:`btensors`, (M,) [s/m^2]."""
        return self.btensors().diagonal(dim1=-2, dim2=-1).sum(-1)

    @classmethod
    def from_bvalues(
        cls,
        waveform: WaveformShape,
        bvalues,
        directions,
        gyromagnetic_ratio: float = GAMMA_PROTON,
        echo_time=None,
        *,
        allow_unrefocused: bool = False,
        plausibility: Plausibility | None = None,
    ) -> Acquisition:
        """Acquisition whose amplitudes [T/m] give the requested b-values.

        Args:
            waveform: the unit-amplitude shape.
            bvalues: (M,) b-values [s/m^2], >= 0.
            directions: (M, 3) or (M, C, 3) unit directions [-]; zero vectors allowed
                where b = 0.
            gyromagnetic_ratio: [rad/(s T)].
            echo_time: echo time [s] or None (waveform duration).
            allow_unrefocused, plausibility: as in :class:`Acquisition`; the b-values are
                checked against the ``bvalue`` range.

        The amplitude is sqrt(b / b_unit) with b_unit the b-value of unit amplitude along
        the given directions.  At b = 0 the square root has no derivative (the amplitude's
        and the b-tensors' gradients there are 0), but the signal has one: the signal is
        even in the amplitude, E = E_0 + c_1 b / b_unit + c_2 (b / b_unit)^2 + ..., so
        when ``bvalues`` carry gradients the b = 0 rows with a direction are recorded
        (``zero_bvalues``) and :func:`mf_dmri.signal.signal` and
        :func:`~mf_dmri.signal.signal_with_error` add c_1 and c_2 from the exact
        amplitude derivatives at 0 (:mod:`mf_dmri.signal.zero_bvalue`): dE/db and
        d2E/db2 are exact there.  A b = 0 row with a zero direction has no direction to
        grow along; its b-derivative stays 0.
        """
        bvalues = as_real_tensor(bvalues, "bvalues", device=waveform.duration.device)
        if bvalues.ndim != 1 or bvalues.numel() == 0:
            raise ValueError(f"bvalues must have shape (M,) [s/m^2], got {tuple(bvalues.shape)}")
        check_positive(bvalues, "bvalues", "s/m^2", allow_zero=True)
        check_plausible("bvalue", bvalues, "bvalues", plausibility)
        positive = bvalues.detach() > 0
        options = {"allow_unrefocused": allow_unrefocused, "plausibility": plausibility}
        unit = cls(
            waveform, directions, positive.to(DTYPE), gyromagnetic_ratio, echo_time, **options
        )
        unit_bvalues = unit.bvalues()  # b-value at unit amplitude, 0 where b == 0
        if bool((unit_bvalues.detach()[positive] <= 0).any()):
            raise ValueError(
                "the waveform gives no diffusion weighting along some directions with b > 0, "
                "so no amplitude reaches the b-value; check the waveform samples"
            )
        safe_unit = torch.where(positive, unit_bvalues, torch.ones_like(unit_bvalues))
        ratio = torch.where(positive, bvalues / safe_unit, torch.ones_like(bvalues))
        amplitudes = torch.where(positive, torch.sqrt(ratio), torch.zeros_like(ratio))
        name = "the amplitudes these b-values need with this waveform's timing"
        check_plausible("gradient", amplitudes, name, plausibility)
        zero = _zero_bvalues(unit, bvalues, positive)
        return cls(
            waveform,
            unit.directions,
            amplitudes,
            gyromagnetic_ratio,
            echo_time,
            zero_bvalues=zero,
            **options,
        )


def _zero_bvalues(unit: Acquisition, bvalues: torch.Tensor, positive) -> ZeroBvalues | None:
    """The b = 0 rows with a direction when ``bvalues`` carry gradients (else None); their
    b-value at unit amplitude from ``unit`` (an acquisition with the same directions)."""
    if not bvalues.requires_grad:
        return None
    directed = unit.directions.detach().abs().sum(dim=(1, 2)) > 0
    rows = torch.nonzero(~positive & directed).flatten()
    if rows.numel() == 0:
        return None
    try:
        check_refocused(unit.waveform)
    except NotRefocusedError:
        raise ValueError(
            "bvalues carry gradients and some are 0, but the waveform is not refocused: "
            "the signal then has a term linear in the amplitude sqrt(b / b_unit), so dE/db "
            "at b = 0 does not exist; differentiate with respect to amplitudes "
            "(Acquisition(waveform, directions, amplitudes, allow_unrefocused=True)) or "
            "detach the b-values"
        ) from None
    ones = torch.ones(rows.numel(), dtype=DTYPE, device=bvalues.device)
    along = replace(unit, directions=unit.directions[rows], amplitudes=ones, zero_bvalues=None)
    return ZeroBvalues(rows, bvalues[rows], along.bvalues().detach())


def multi_shell(
    waveform: WaveformShape,
    bvalues: Sequence[float] | torch.Tensor,
    num_directions: int | Sequence[int],
    *,
    scheme: str = "electrostatic",
    seed: int = 0,
    gyromagnetic_ratio: float = GAMMA_PROTON,
    echo_time=None,
    plausibility: Plausibility | None = None,
) -> Acquisition:
    """Multi-shell acquisition for a one-channel waveform.

    Each shell ``b > 0`` gets ``num_directions`` directions from the same half-sphere
    scheme (``"electrostatic"``: :func:`electrostatic_directions` with ``seed``;
    ``"fibonacci"``: :func:`fibonacci_sphere` on the half sphere).  A shell ``b = 0``
    gives one measurement with a zero direction.  Measurements are ordered shell by shell.

    Args:
        waveform: one-channel unit-amplitude shape.
        bvalues: (S,) shell b-values [s/m^2], >= 0.
        num_directions: directions per shell (one int for all shells, or one per shell).
        scheme: ``"electrostatic"`` or ``"fibonacci"``.
        seed: seed of the electrostatic scheme.
        gyromagnetic_ratio: [rad/(s T)].
        echo_time: echo time [s] or None.
        plausibility: override of the range checks (``mf_dmri.plausibility``).
    """
    from mf_dmri.sequences.directions import electrostatic_directions, fibonacci_sphere

    if waveform.num_channels != 1:
        raise ValueError(
            f"multi_shell needs a one-channel waveform, got {waveform.num_channels} channels; "
            "use Acquisition.from_bvalues with (M, C, 3) directions"
        )
    shells = as_real_tensor(bvalues, "bvalues")
    if shells.ndim != 1 or shells.numel() == 0:
        raise ValueError(f"bvalues must be a non-empty 1-D list [s/m^2], got {tuple(shells.shape)}")
    counts = (
        list(num_directions)
        if isinstance(num_directions, list | tuple)
        else [num_directions] * shells.numel()
    )
    counts = [positive_integer(c, "num_directions") for c in counts]
    if len(counts) != shells.numel():
        raise ValueError(f"num_directions has {len(counts)} entries for {shells.numel()} shells")
    if scheme not in ("electrostatic", "fibonacci"):
        raise ValueError(f"scheme must be 'electrostatic' or 'fibonacci', got {scheme!r}")
    all_bvalues, all_directions = [], []
    for shell, count in zip(shells, counts, strict=True):
        if float(shell.detach()) == 0:
            all_bvalues.append(shell[None])
            all_directions.append(torch.zeros(1, 3, dtype=DTYPE))
            continue
        if scheme == "electrostatic":
            points = electrostatic_directions(count, seed=seed)
        else:
            points = fibonacci_sphere(count, hemisphere=True)
        all_bvalues.append(shell.expand(points.shape[0]))
        all_directions.append(points)
    return Acquisition.from_bvalues(
        waveform,
        torch.cat(all_bvalues),
        torch.cat(all_directions).to(shells.device),
        gyromagnetic_ratio,
        echo_time,
        plausibility=plausibility,
    )
