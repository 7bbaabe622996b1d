"""Cross-check of two independent engines on one permeable, relaxing FEM system: the
coupled matrix formalism (eigen-decomposition of A phi = lambda M phi, mf_dmri.fem.
permeable_eigenbasis) and the BTPDE time-stepper (mf_dmri.signal.btpde, no eigenmodes)
must agree once the MF keeps enough modes and the time step is small."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from permeable_helpers import square_in_square

from mf_dmri.fem import (
    PermeableParameters,
    permeable_eigenbasis,
    permeable_mesh,
    permeable_operator,
)
from mf_dmri.sequences import OGSE, PGSE, Acquisition
from mf_dmri.signal import signal
from mf_dmri.signal.btpde import btpde_signal

UM, MS = 1e-6, 1e-3


@pytest.fixture(scope="module")
def system():
    """A square cell (label 1) in a square of extracellular space (label 0), exchanging
    through its membrane, with different D, T2, spin density and surface relaxivity."""
    nodes, elements, labels = square_in_square(10 * UM, 4 * UM, 10)
    mesh = permeable_mesh(nodes, elements, element_labels=labels)
    params = PermeableParameters(
        diffusivity=(2e-9, 1e-9),
        permeability=2e-5,
        t2=(70 * MS, 40 * MS),
        spin_density=(1.0, 0.7),
        surface_relaxivity=(5e-6, 0.0),
    )
    return mesh, params


def _acquisition(waveform) -> Acquisition:
    angles = np.linspace(0, np.pi, 4, endpoint=False)
    directions = np.stack([np.cos(angles), np.sin(angles), 0 * angles], axis=1)
    bvalues = np.repeat([1e9, 3e9], len(angles))
    return Acquisition.from_bvalues(waveform, bvalues, np.tile(directions, (2, 1)))


@pytest.mark.parametrize(
    "waveform",
    [PGSE(5 * MS, 15 * MS), OGSE(10 * MS, 15 * MS, num_periods=2)],
    ids=["pgse", "ogse"],
)
def test_coupled_mf_agrees_with_btpde(system, waveform):
    mesh, params = system
    acquisition = _acquisition(waveform)
    pieces = acquisition.pieces(0.25 * MS)
    operator = permeable_operator(mesh, params)
    mf = signal(permeable_eigenbasis(mesh, params, num_modes=operator.num_dofs - 20), pieces)
    step = 0.05 * MS  # below the OGSE piece length (0.25 ms), so halving it matters
    coarse = btpde_signal(operator, pieces, time_step=2 * step, scheme="gauss-legendre")
    fine = btpde_signal(operator, pieces, time_step=step, scheme="gauss-legendre")
    time_error = float((coarse - fine).abs().max())
    assert time_error < 1e-6  # the reference is converged in time
    difference = float((mf - fine).abs().max())
    assert difference < 1e-6, difference  # measured 1.5e-8 (PGSE), 3.5e-7 (OGSE)
    # exchange and relaxation matter here: the impermeable, non-relaxing signal differs
    plain = PermeableParameters(diffusivity=params.diffusivity, spin_density=(1.0, 0.7))
    other = btpde_signal(permeable_operator(mesh, plain), pieces, time_step=2 * step)
    assert float((other - fine).abs().max()) > 1e-2
    assert torch.isfinite(mf).all()
