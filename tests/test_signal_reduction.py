"""The reachable-subspace search runs only where it can pay: a mesh basis of several
pieces (degenerate only in its zero modes) skips it and keeps the full basis, exactly;
an analytic ball (clusters of 2l + 1 modes) still reduces."""

import importlib

import numpy as np
import pytest
import torch
from propagator_cases import box_nodes, random_acquisition

from mf_dmri.analytic import ball_basis
from mf_dmri.fem import mesh_eigenbasis
from mf_dmri.sequences import PGSE
from mf_dmri.signal import Compartment, signal
from mf_dmri.units import ms, um

reduction = importlib.import_module("mf_dmri.signal.reduction")  # mf_dmri.signal: a function


def _counted(monkeypatch) -> list[int]:
    calls = []
    search = reduction.reachable_subspace

    def counting(*args, **kwargs):
        calls.append(1)
        return search(*args, **kwargs)

    monkeypatch.setattr(reduction, "reachable_subspace", counting)
    return calls


@pytest.fixture(scope="module")
def two_piece_basis():
    """Two disjoint randomised boxes, the second 10 % larger: a generic spectrum whose only
    degenerate cluster is the two zero modes."""
    nodes, elements = box_nodes(6)
    other = nodes * 1.1 + torch.tensor([20e-6, 0.0, 0.0], dtype=nodes.dtype)
    both = torch.cat([nodes, other])
    cells = np.vstack([elements, elements + len(nodes)])
    return mesh_eigenbasis(both, cells, max_eigenvalue=8e12, order=1)


def test_a_basis_of_several_pieces_skips_the_search_and_stays_exact(two_piece_basis, monkeypatch):
    basis = two_piece_basis
    assert int((basis.eigenvalues == 0).sum()) == 2
    acquisition = random_acquisition(PGSE(5 * ms, 15 * ms), 0.08, count=8)
    calls = _counted(monkeypatch)
    fast = signal(Compartment(basis, 2e-9), acquisition)
    assert not calls  # no search: at most 1 of the basis's modes could be dropped
    monkeypatch.setattr(reduction, "_worth_searching", lambda eigenvalues, hidden: True)
    searched = signal(Compartment(basis, 2e-9), acquisition)
    assert calls  # forced: it searched (and found no gain)
    torch.testing.assert_close(fast, searched, rtol=0, atol=1e-13)


def test_an_analytic_ball_still_reduces(monkeypatch):
    basis = ball_basis(5 * um, max_eigenvalue=400 / (5 * um) ** 2)
    acquisition = random_acquisition(PGSE(5 * ms, 15 * ms), 0.08, count=3)
    calls = _counted(monkeypatch)
    signal(Compartment(basis, 2e-9), acquisition)
    assert calls
