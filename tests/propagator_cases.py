"""Cases shared by the propagator tests (tests/test_signal_exponential_actions.py,
tests/test_signal_krylov.py, tests/test_signal_shift_invert.py): a generic FEM basis (the
``fem_basis`` fixture of tests/conftest.py), random acquisitions and the waveforms."""

from __future__ import annotations

import numpy as np
import torch
from skfem import MeshTet

from mf_dmri.fem import mesh_eigenbasis
from mf_dmri.sequences import OGSE, PGSE, Acquisition, DoublePGSE, SampledWaveform
from mf_dmri.units import ms

D = 2e-9
AGREE = 1e-9  # both tolerances (1e-10, 1e-11) with room for the dense path's round-off


def box_nodes(points: int) -> tuple[torch.Tensor, np.ndarray]:
    """A 6 x 5 x 4 um box with interior nodes moved at random: a generic spectrum."""
    mesh = MeshTet.init_tensor(*(np.linspace(0, s, points) for s in (6e-6, 5e-6, 4e-6)))
    nodes = mesh.p.T.copy()
    inside = np.ones(nodes.shape[0], dtype=bool)
    inside[mesh.boundary_nodes()] = False
    shift = 0.15 * 1e-6 * np.random.default_rng(0).standard_normal(nodes.shape)
    nodes[inside] += shift[inside]
    return torch.tensor(nodes), mesh.t.T.copy()


def generic_fem_basis():
    """The eigenbasis of the 8-point box (no symmetry: complex arithmetic, > 60 modes)."""
    nodes, elements = box_nodes(8)
    return mesh_eigenbasis(nodes, elements, max_eigenvalue=1.5e13, order=1)


def random_acquisition(waveform, top: float, count: int = 6, seed: int = 0) -> Acquisition:
    """``count`` measurements in seeded random directions, amplitudes in [0.3, 1] ``top``
    [T/m]."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    amplitudes = rng.uniform(0.3 * top, top, size=count)
    if waveform.num_channels == 2:  # double PGSE: a second, random direction per measurement
        second = rng.normal(size=(count, 3))
        second /= np.linalg.norm(second, axis=1, keepdims=True)
        directions = np.stack([directions, second], axis=1)
    return Acquisition(waveform, torch.tensor(directions), torch.tensor(amplitudes))


def sampled_three_channels() -> Acquisition:
    """A random sampled waveform on three channels, in three orientations."""
    samples = np.random.default_rng(2).normal(size=(10, 3))
    waveform = SampledWaveform(torch.tensor(samples), 2 * ms)
    rotations = torch.eye(3, dtype=torch.float64).expand(3, 3, 3).clone()
    rotations[1] = torch.linalg.qr(torch.tensor(np.random.default_rng(3).normal(size=(3, 3))))[0]
    # random samples do not refocus: the gradient-echo signal with its phase is compared
    return Acquisition(
        waveform, rotations, torch.tensor([0.02, 0.05, 0.08]), allow_unrefocused=True
    )


WAVEFORMS = {
    "pgse": lambda: random_acquisition(PGSE(10 * ms, 30 * ms), 0.2),
    "ogse": lambda: random_acquisition(OGSE(15 * ms, 20 * ms, 2), 0.3, count=3),
    "double_pgse": lambda: random_acquisition(DoublePGSE(5 * ms, 15 * ms, 5 * ms), 0.15),
    "sampled": sampled_three_channels,
}
