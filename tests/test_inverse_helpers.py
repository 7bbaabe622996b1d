"""Shared protocols and fixtures of the tests/test_inverse_*.py files (no tests here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mf_dmri.inverse import PGSEProtocol
from mf_dmri.units import ms, mT_per_m

#: Shells of the radius-recovery protocol: (G [mT/m], delta [ms], Delta [ms]).  G <= 300
#: mT/m (Connectom-class gradients), delta <= 20 ms, Delta <= 60 ms, b up to 86,000 s/mm^2
#: (300 mT/m, 20/40 ms).  The two long-Delta shells at weak gradients make R = 10 um as
#: well determined as R = 2 um: Rician CRB of the radius at SNR 30 1.57 / 1.17 / 1.17 % at
#: R = 2 / 5 / 10 um, against 1.91 / 0.91 / 1.92 % for the earlier protocol with Delta =
#: 30 ms only (10/30 ms at 40, 80, 150, 300 and 20/30 ms at 200, 300 mT/m), same count.
RECOVERY_SHELLS = [
    (40, 10, 30),
    (300, 10, 30),
    (300, 20, 30),
    (300, 20, 40),
    (40, 10, 60),
    (80, 10, 60),
]


def fibre_directions(perpendicular: int, oblique: int, parallel: int) -> torch.Tensor:
    """Directions for a fibre along z: ``perpendicular`` spread over 180 degrees in the
    xy-plane, ``oblique`` at 45 degrees, ``parallel`` along z."""
    a = np.linspace(0, np.pi, perpendicular, endpoint=False)
    flat = np.stack([np.cos(a), np.sin(a), 0 * a], 1)
    b = np.linspace(0, 2 * np.pi, oblique, endpoint=False)
    tilted = np.stack([np.cos(b), np.sin(b), np.ones(oblique)], 1) / np.sqrt(2)
    along = np.tile([[0.0, 0.0, 1.0]], (parallel, 1))
    return torch.tensor(np.concatenate([flat, tilted, along]))


def shell_protocol(shells, directions: torch.Tensor, b0: int = 4) -> PGSEProtocol:
    """PGSEProtocol from (G [mT/m], delta [ms], Delta [ms]) triples."""
    return PGSEProtocol(
        [d * ms for _, d, _ in shells],
        [big * ms for _, _, big in shells],
        [g * mT_per_m for g, _, _ in shells],
        directions,
        b0_measurements=b0,
    )


def recovery_protocol() -> PGSEProtocol:
    """148 measurements: 4 b = 0, then 6 shells x (16 perpendicular + 6 oblique + 2
    parallel) directions."""
    return shell_protocol(RECOVERY_SHELLS, fibre_directions(16, 6, 2))


def small_protocol() -> PGSEProtocol:
    """26 measurements for fast checks: 2 b = 0, 2 shells x 12 directions (any axis)."""
    rng = np.random.default_rng(7)
    directions = rng.normal(size=(12, 3))
    return shell_protocol([(100, 10, 30), (250, 15, 40)], torch.tensor(directions), b0=2)


@pytest.fixture
def single_thread():
    """One torch thread: the small matrices here are slower with threads on shared cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
