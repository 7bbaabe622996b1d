"""Signals of one coupled geometry point (its tissue values are inside its eigenbasis).

A :class:`~mf_dmri.coupled.CoupledBasis` already contains diffusion, exchange and (bulk and
surface) relaxation, so a coupled point is one row: its signal for every measurement is
:func:`mf_dmri.signal.signal` on the basis, timing by timing (the same call as outside a
sweep), with the error bar of
:func:`~mf_dmri.signal.coupled_error.coupled_signal_with_error` (the coupled basis truncated
at a quarter and half of its largest rate against every mode, the larger of the two
changes, plus the propagation error; a smooth waveform's signal is the one refined in time,
with its waveform error, :mod:`mf_dmri.signal.waveform_error`).
"""

from __future__ import annotations

import torch

from mf_dmri._checks import CDTYPE, DTYPE
from mf_dmri.coupled import CoupledBasis
from mf_dmri.signal.coupled_error import coupled_signal_with_error
from mf_dmri.signal.propagation import DEFAULT_CHUNK_BYTES
from mf_dmri.sweep.acquisition import MeasurementTable, timing_acquisition


class CoupledSimulator:
    """Signals of one coupled geometry point.

    Args:
        basis: the point's coupled eigen-data.
        measurements: the sweep's measurement table.
        normalize: divide by ``r^T M m0`` = sum of volume x spin density (dimensionless);
            otherwise the signal is in [m^3].
        device: torch device for the computation.
        max_chunk_bytes: memory budget of one batch of propagation [bytes].
    """

    def __init__(
        self,
        basis: CoupledBasis,
        measurements: MeasurementTable,
        *,
        normalize: bool = True,
        device: torch.device | str = "cpu",
        max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        self.device = torch.device(device)
        self.basis = basis.to(self.device)
        self.measurements = measurements
        self.normalize = normalize
        self.max_chunk_bytes = max_chunk_bytes

    def signals_with_error(self, tissue: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Signal (1, M) complex128 of the point and its error bars (1, M) [signal unit].
        ``tissue`` must be empty: the tissue values are in the basis."""
        if tissue:
            raise ValueError(
                f"a coupled geometry point holds its tissue values; got extra {sorted(tissue)}"
            )
        result = torch.zeros(1, self.measurements.count, dtype=CDTYPE, device=self.device)
        bars = torch.zeros(result.shape, dtype=DTYPE, device=self.device)
        for timing in self.measurements.timings:
            acquisition = timing_acquisition(self.measurements, timing)
            with torch.no_grad():  # smooth waveforms: the signal refined in time with its bar
                values = coupled_signal_with_error(
                    self.basis,
                    acquisition.pieces(),
                    normalize=self.normalize,
                    max_chunk_bytes=self.max_chunk_bytes,
                    acquisition=acquisition,
                )
            index = torch.as_tensor(timing.indices, device=self.device)
            result[0, index] = values.signal.detach().to(CDTYPE)
            bars[0, index] = values.error_bar.to(DTYPE)
        return result, bars
