"""A PGSE gradient table (a "scheme"): one row per measurement, SI units.

Every gradient-table format mf_dmri reads or writes (FSL bvals/bvecs with a BIDS sidecar,
Camino, MRtrix ``.b``, dipy ``GradientTable``) goes through :class:`Scheme`, and a scheme
becomes acquisitions in one place (:meth:`Scheme.acquisitions`).  Rows may mix timings;
each distinct (pulse duration, pulse separation, echo time) becomes one
:class:`~mf_dmri.sequences.Acquisition`.

A row is given by its b-value or by its gradient amplitude (Camino stores the amplitude,
FSL and MRtrix the b-value); the other follows from the Stejskal-Tanner relation
b = gamma^2 G^2 delta^2 (Delta - delta/3) (Stejskal and Tanner 1965) once the timing is known.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from mf_dmri._checks import DTYPE
from mf_dmri.plausibility import Plausibility
from mf_dmri.sequences import PGSE, Acquisition
from mf_dmri.units import GAMMA_PROTON

#: accepted deviation of a direction's norm from 1 (files are written with 4-6 decimals)
UNIT_TOLERANCE = 1e-2


def _column(values, name: str, count: int | None, unit: str) -> np.ndarray | None:
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0 and count is not None:
        array = np.full(count, float(array))
    if array.ndim != 1 or (count is not None and array.size != count):
        raise ValueError(f"{name} must have one value per row ({count}) [{unit}]")
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f"{name} must be finite and non-negative [{unit}]")
    return array


@dataclass(frozen=True, eq=False)
class Scheme:
    """PGSE measurements, one row each.

    Args:
        directions: (N, 3) gradient directions [-], unit vectors within ``UNIT_TOLERANCE``
            (kept as given, so that files round-trip exactly; normalised when acquisitions
            are built); zero vectors only where the b-value or amplitude is 0.
        bvalues: (N,) b-values [s/m^2], or None when ``gradient_amplitudes`` are given.
        gradient_amplitudes: (N,) amplitudes [T/m], or None when ``bvalues`` are given.
        pulse_duration: (N,) gradient pulse duration delta [s], or None (unknown).
        pulse_separation: (N,) pulse separation Delta [s], or None (unknown).
        echo_time: (N,) echo time [s], or None (the end of the second pulse).
        gyromagnetic_ratio: [rad/(s T)].
    """

    directions: np.ndarray
    bvalues: np.ndarray | None = None
    gradient_amplitudes: np.ndarray | None = None
    pulse_duration: np.ndarray | None = None
    pulse_separation: np.ndarray | None = None
    echo_time: np.ndarray | None = None
    gyromagnetic_ratio: float = GAMMA_PROTON

    def __post_init__(self) -> None:
        directions = np.asarray(self.directions, dtype=np.float64)
        if directions.ndim != 2 or directions.shape[1] != 3 or directions.shape[0] == 0:
            raise ValueError(f"directions must have shape (N, 3), got {directions.shape}")
        count = directions.shape[0]
        if (self.bvalues is None) == (self.gradient_amplitudes is None):
            raise ValueError("give exactly one of bvalues [s/m^2] and gradient_amplitudes [T/m]")
        columns = {
            "bvalues": ("s/m^2", self.bvalues),
            "gradient_amplitudes": ("T/m", self.gradient_amplitudes),
            "pulse_duration": ("s", self.pulse_duration),
            "pulse_separation": ("s", self.pulse_separation),
            "echo_time": ("s", self.echo_time),
        }
        for name, (unit, values) in columns.items():
            object.__setattr__(self, name, _column(values, name, count, unit))
        if (self.pulse_duration is None) != (self.pulse_separation is None):
            raise ValueError("give both pulse_duration and pulse_separation [s], or neither")
        if self.pulse_duration is not None and (self.pulse_separation < self.pulse_duration).any():
            raise ValueError("pulse_separation (Delta) must be >= pulse_duration (delta) [s]")
        weights = self.bvalues if self.bvalues is not None else self.gradient_amplitudes
        _check_directions(directions, weights > 0)
        object.__setattr__(self, "directions", directions)

    @property
    def num_rows(self) -> int:
        return int(self.directions.shape[0])

    @property
    def has_timing(self) -> bool:
        return self.pulse_duration is not None

    def with_timing(self, pulse_duration, pulse_separation, echo_time=None) -> Scheme:
        """The same rows with the timing set: scalars or (N,) [s]."""
        return replace(
            self,
            pulse_duration=pulse_duration,
            pulse_separation=pulse_separation,
            echo_time=echo_time,
        )

    def unit_directions(self) -> np.ndarray:
        """(N, 3) directions normalised to unit length (zero rows stay zero) [-]."""
        norms = np.linalg.norm(self.directions, axis=1)
        # rows already unit to round-off are kept bit for bit
        exact = np.abs(norms - 1.0) <= 4 * np.finfo(np.float64).eps
        return self.directions / np.where(exact | (norms == 0), 1.0, norms)[:, None]

    def _require_timing(self) -> None:
        if not self.has_timing:
            raise ValueError(
                "the gradient table has no timing: give pulse_duration_ms and "
                "pulse_separation_ms (a BIDS sidecar, the TOML [acquisition] or the CLI flags)"
            )

    def _unit_bvalues(self) -> np.ndarray:
        """b-value per unit amplitude (T/m)^-2 [s/m^2] of every row's PGSE timing."""
        self._require_timing()
        delta, separation = self.pulse_duration, self.pulse_separation
        return self.gyromagnetic_ratio**2 * delta**2 * (separation - delta / 3)

    def bvalues_si(self) -> np.ndarray:
        """(N,) b-values [s/m^2] (from the amplitudes if the rows give amplitudes)."""
        if self.bvalues is not None:
            return self.bvalues
        return self._unit_bvalues() * self.gradient_amplitudes**2

    def amplitudes_si(self) -> np.ndarray:
        """(N,) gradient amplitudes [T/m] (from the b-values if the rows give b-values)."""
        if self.gradient_amplitudes is not None:
            return self.gradient_amplitudes
        return np.sqrt(self.bvalues / self._unit_bvalues())

    def timings(self) -> list[tuple[tuple[float, float, float | None], np.ndarray]]:
        """Distinct (pulse_duration, pulse_separation, echo_time) [s] with their rows."""
        self._require_timing()
        # -1 marks "no echo time given" (NaN would make every row distinct in np.unique)
        echo = self.echo_time if self.echo_time is not None else np.full(self.num_rows, -1.0)
        keys = np.stack([self.pulse_duration, self.pulse_separation, echo], axis=1)
        result = []
        for key in np.unique(keys, axis=0):
            rows = np.flatnonzero((keys == key).all(axis=1))
            echo_time = None if key[2] < 0 else float(key[2])
            result.append(((float(key[0]), float(key[1]), echo_time), rows))
        return result

    def acquisitions(
        self, plausibility: Plausibility | None = None
    ) -> list[tuple[Acquisition, np.ndarray]]:
        """One (Acquisition, row indices) per distinct timing, in order of timing;
        ``plausibility``: the override of their range checks (``mf_dmri.plausibility``)."""
        result = []
        checks = {"plausibility": plausibility}
        for (delta, separation, echo_time), rows in self.timings():
            waveform = PGSE(delta, separation, **checks)
            directions = torch.as_tensor(self.unit_directions()[rows], dtype=DTYPE)
            if self.gradient_amplitudes is not None:
                acquisition = Acquisition(
                    waveform,
                    directions,
                    torch.as_tensor(self.gradient_amplitudes[rows], dtype=DTYPE),
                    self.gyromagnetic_ratio,
                    echo_time,
                    **checks,
                )
            else:
                acquisition = Acquisition.from_bvalues(
                    waveform,
                    torch.as_tensor(self.bvalues[rows], dtype=DTYPE),
                    directions,
                    self.gyromagnetic_ratio,
                    echo_time,
                    **checks,
                )
            result.append((acquisition, rows))
        return result

    @classmethod
    def from_acquisition(cls, acquisition: Acquisition) -> Scheme:
        """The rows of a one-channel PGSE acquisition (amplitudes kept exactly)."""
        waveform = acquisition.waveform
        if not isinstance(waveform, PGSE) or acquisition.num_channels != 1:
            raise ValueError(
                "a gradient table describes single-direction PGSE measurements; this "
                f"acquisition has a {type(waveform).__name__} waveform with "
                f"{acquisition.num_channels} channel(s): write its waveform instead"
            )
        count = acquisition.num_measurements
        echo = acquisition.echo_time
        return cls(
            directions=acquisition.directions[:, 0].detach().cpu().numpy(),
            gradient_amplitudes=acquisition.amplitudes.detach().cpu().numpy(),
            pulse_duration=np.full(count, float(waveform.pulse_duration)),
            pulse_separation=np.full(count, float(waveform.pulse_separation)),
            echo_time=None if echo is None else np.full(count, float(echo)),
            gyromagnetic_ratio=acquisition.gyromagnetic_ratio,
        )


def _check_directions(directions: np.ndarray, weighted: np.ndarray) -> None:
    norms = np.linalg.norm(directions, axis=1)
    bad = np.abs(norms - 1.0) > UNIT_TOLERANCE
    bad &= ~(~weighted & (norms == 0))
    if not np.isfinite(directions).all():
        raise ValueError("gradient directions must be finite")
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"gradient direction of row {row + 1} has norm {norms[row]:.6g}; directions must "
            f"be unit vectors within {UNIT_TOLERANCE:g} (zero vectors only for b = 0 rows)"
        )
