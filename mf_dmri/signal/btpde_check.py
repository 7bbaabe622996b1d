"""Check a matrix-formalism signal against the BTPDE reference on a subset of measurements.

The MF and the BTPDE solve the same finite-element system; the MF truncates it to the
eigenmodes below its cutoff, the BTPDE does not truncate but steps in time.  On a few
measurements (the hardest: largest b, highest frequency) the difference of the two is the
MF truncation error up to the BTPDE time-stepping error, which is itself estimated here
by step halving (Richardson: err(h/2) ~ |E(h) - E(h/2)| / (2^p - 1) for a scheme of
order p) and reported, so the check says when it is conclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mf_dmri.fem.bloch_torrey import BlochTorreyOperator
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal.api import as_pieces
from mf_dmri.signal.btpde import BtpdeResult, btpde_solve


@dataclass(frozen=True)
class BtpdeComparison:
    """MF against BTPDE on a subset of measurements.

    Args:
        measurements: (K,) indices of the checked measurements.
        mf_signal: complex128 (K,) the MF signal there.
        btpde_signal: complex128 (K,) the BTPDE signal at the halved step.
        difference: float64 (K,) |MF - BTPDE| (the MF truncation error, up to the BTPDE
            error).
        btpde_error_estimate: float64 (K,) Richardson estimate of the BTPDE time error.
        btpde: diagnostics of the BTPDE run at the halved step.
    """

    measurements: np.ndarray
    mf_signal: torch.Tensor
    btpde_signal: torch.Tensor
    difference: torch.Tensor
    btpde_error_estimate: torch.Tensor
    btpde: BtpdeResult

    @property
    def conclusive(self) -> bool:
        """Whether the BTPDE is accurate enough to measure the MF error: its estimated
        time error is below a tenth of the largest difference, or both are tiny."""
        difference = float(self.difference.max())
        btpde_error = float(self.btpde_error_estimate.max())
        return btpde_error <= 0.1 * difference or btpde_error <= 1e-8


def compare_with_btpde(
    operator: BlochTorreyOperator,
    acquisition,
    mf_signal: torch.Tensor,
    *,
    time_step: float,
    measurements=None,
    scheme: str = "gauss-legendre",
    waveform_time_step: float | None = None,
) -> BtpdeComparison:
    """The MF signal against the BTPDE on the same finite-element system.

    Args:
        operator: the finite-element system the MF basis was computed from.
        acquisition: the acquisition (or ``GradientPieces``) of ``mf_signal``.
        mf_signal: complex (M,) normalised MF signal of every measurement.
        time_step: BTPDE step [s]; the BTPDE runs at ``time_step`` and ``time_step / 2``.
        measurements: indices of the measurements to check (None: all).
        scheme: BTPDE time-stepping scheme (see :func:`btpde_solve`).
        waveform_time_step: piece length for smooth waveforms [s], as used for the MF.
    """
    pieces = as_pieces(acquisition, waveform_time_step)
    mf_signal = torch.as_tensor(mf_signal).detach().to("cpu", torch.complex128).reshape(-1)
    if mf_signal.numel() != pieces.num_measurements:
        raise ValueError(
            f"mf_signal has {mf_signal.numel()} values for {pieces.num_measurements} "
            "measurements; pass the MF signal of this acquisition"
        )
    indices = np.arange(pieces.num_measurements) if measurements is None else measurements
    indices = np.atleast_1d(np.asarray(indices, dtype=int))
    if indices.size == 0 or indices.min() < 0 or indices.max() >= pieces.num_measurements:
        raise ValueError(
            f"measurements must be indices in [0, {pieces.num_measurements}), got {indices}"
        )
    subset = GradientPieces(
        pieces.durations.detach().cpu(),
        pieces.gradients.detach().cpu()[torch.as_tensor(indices)],
        pieces.gyromagnetic_ratio,
    )
    coarse = btpde_solve(operator, subset, time_step=time_step, scheme=scheme)
    fine = btpde_solve(operator, subset, time_step=time_step / 2, scheme=scheme)
    richardson = (coarse.signal - fine.signal).abs() / (2**fine.order - 1)
    mf_subset = mf_signal[torch.as_tensor(indices)]
    return BtpdeComparison(
        measurements=indices,
        mf_signal=mf_subset,
        btpde_signal=fine.signal,
        difference=(mf_subset - fine.signal).abs(),
        btpde_error_estimate=richardson,
        btpde=fine,
    )
