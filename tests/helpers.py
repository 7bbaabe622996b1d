"""Test helpers independent of mf_dmri.sequences: PGSE pieces built by hand."""

from __future__ import annotations

import numpy as np
import torch

from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.units import GAMMA_PROTON


def pgse_amplitude(bvalue, pulse_duration, pulse_separation):
    """Stejskal-Tanner: b = gamma^2 G^2 delta^2 (Delta - delta/3), solved for G [T/m]."""
    b = np.asarray(bvalue, dtype=float)
    return np.sqrt(
        b / (GAMMA_PROTON**2 * pulse_duration**2 * (pulse_separation - pulse_duration / 3))
    )


def pgse_pieces(pulse_duration, pulse_separation, amplitudes, direction=(1.0, 0.0, 0.0)):
    """PGSE as 3 pieces; amplitudes [T/m] (tensor or array), direction (3,) or (M, 3)."""
    amp = torch.as_tensor(amplitudes, dtype=torch.float64).reshape(-1)
    n = torch.as_tensor(np.asarray(direction, dtype=float), dtype=torch.float64)
    n = n / torch.linalg.vector_norm(n, dim=-1, keepdim=True)
    g = amp[:, None] * n if n.ndim == 1 else amp[:, None] * n
    gradients = torch.stack([g, torch.zeros_like(g), -g], dim=1)
    delta = torch.as_tensor(pulse_duration, dtype=torch.float64)
    big = torch.as_tensor(pulse_separation, dtype=torch.float64)
    return GradientPieces(torch.stack([delta, big - delta, delta]), gradients)
