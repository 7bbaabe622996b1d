"""3-D path: nested surfaces -> labelled netgen tetrahedra -> permeable mesh -> coupled MF."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from mf_dmri.fem import PermeableParameters, mesh_eigenbasis, permeable_eigenbasis, permeable_mesh
from mf_dmri.signal import Compartment, signal

pytest.importorskip("netgen")
UM = 1e-6
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "permeable_axon.py"


def _example():
    spec = importlib.util.spec_from_file_location("permeable_axon", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_axon_in_a_box_from_surfaces():
    """The membrane of a 16-segment capped cylinder (R = 2 um, 6 um long) is the interface
    (its polyhedral area to 1e-9); at kappa = 0 the coupled MF equals the impermeable
    labelled-mesh eigenbasis path to 1e-10; the example runs and its d(signal)/d(kappa)
    matches a central finite difference to 1e-5."""
    example = _example()
    volume = example.axon_in_box(2.0 * UM)
    mesh = permeable_mesh(volume)
    side = 2 * 2 * UM * math.sin(math.pi / 16)
    cap = 16 * 0.5 * (2 * UM) ** 2 * math.sin(2 * math.pi / 16)
    assert mesh.interfaces == ((0, 1),)
    assert mesh.interface_areas[0] == pytest.approx(16 * side * 6 * UM + 2 * cap, rel=1e-9)
    assert mesh.boundary_matrices[1] is None  # the axon does not touch the box
    acq = example.acquisition()
    coupled = signal(
        permeable_eigenbasis(mesh, PermeableParameters(2e-9), length_scale=2 * UM), acq
    )
    basis = mesh_eigenbasis(
        volume.nodes, volume.elements, element_labels=volume.labels, length_scale=2 * UM, order=1
    )
    independent = signal(Compartment(basis, 2e-9), acq)
    assert torch.allclose(coupled, independent, rtol=0, atol=1e-10)
    results = example.main(mesh=mesh)
    assert all(bool(((v > 0) & (v < 1)).all()) for v, _ in results.values())
    kappa, step = 1e-5, 1e-8
    plus, _ = example.axon_signal(mesh, kappa + step)
    minus, _ = example.axon_signal(mesh, kappa - step)
    finite = float(plus[0] - minus[0]) / (2 * step)
    assert results[kappa][1] == pytest.approx(finite, rel=1e-5)
