"""Axon in a box (impermeable): the signal of the labelled two-compartment mesh equals the
volume-weighted sum of the compartments' signals, computed (a) from the same mesh split by
label and (b) from independently meshed compartments.

Impermeable compartments evolve independently, so the total magnetisation is the sum over
compartments of volume x attenuation (e.g. Grebenkov, Rev. Mod. Phys. 79, 1077 (2007),
sec. V; the matrix formalism per compartment)."""

import importlib.util

import numpy as np
import pytest
import torch

from mf_dmri import units
from mf_dmri.fem import mesh_eigenbasis
from mf_dmri.geometry import box, build_compartments, cylinder, tetrahedralize
from mf_dmri.sequences import PGSE, Acquisition
from mf_dmri.signal import Compartment, signal

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("netgen") is None, reason="netgen is not installed"
)

um = units.um
DIFFUSIVITY = 2e-9
CUTOFF = 1.5 * um  # eigenbasis length_scale


@pytest.fixture(scope="module")
def model():
    block = box((8 * um, 8 * um, 8 * um), edge_length=2 * um)
    axon = cylinder(2 * um, 6 * um, segments=12).translated([4 * um, 4 * um, 4 * um])
    return build_compartments([axon, block], names=["intra", "extra"])


def _acquisition():
    bvalues = torch.tensor([0.0, 1000, 3000]) * units.s_per_mm2
    directions = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0.6, 0, 0.8]])
    return Acquisition.from_bvalues(PGSE(10 * units.ms, 30 * units.ms), bvalues, directions)


def _weighted_sum(bases):
    """sum_k V_k E_k / sum_k V_k, each compartment's attenuation computed on its own."""
    acq = _acquisition()
    volumes = [float(b.volume) for b in bases]
    total = sum(v * signal(Compartment(b, DIFFUSIVITY), acq) for v, b in zip(volumes, bases))
    return total / sum(volumes)


def test_labelled_mesh_signal_is_the_volume_weighted_sum(model):
    """(P1 throughout: the bookkeeping of labels does not depend on the order, and P1 keeps
    this fast-suite test short.)"""
    mesh = tetrahedralize(model, thin_part_cells=None)
    labels = mesh.labels
    together = mesh_eigenbasis(
        mesh.nodes, mesh.elements, element_labels=labels, length_scale=CUTOFF, order=1
    )
    assert int((together.eigenvalues == 0).sum()) == 2  # one zero mode per compartment
    combined = signal(Compartment(together, DIFFUSIVITY), _acquisition())
    # (a) the same mesh, one eigenbasis per label, as two compartments of signal()
    parts = [
        mesh_eigenbasis(mesh.nodes, mesh.elements[labels == k], length_scale=CUTOFF, order=1)
        for k in (0, 1)
    ]
    np.testing.assert_allclose([float(p.volume) for p in parts], model.volumes, rtol=1e-10)
    two = signal([Compartment(p, DIFFUSIVITY) for p in parts], _acquisition())
    torch.testing.assert_close(combined, two, rtol=0, atol=1e-10)
    torch.testing.assert_close(combined, _weighted_sum(parts), rtol=0, atol=1e-10)


@pytest.mark.slow
def test_independently_meshed_compartments_agree(model):
    """The labelled mesh against the axon meshed alone and the extra space of another
    (finer) mesh: equal to the discretisation error (measured 3.4e-4 at b = 3000 s/mm^2)."""
    mesh = tetrahedralize(model, thin_part_cells=None, length_scale=1.0 * um)
    together = mesh_eigenbasis(
        mesh.nodes, mesh.elements, element_labels=mesh.labels, length_scale=CUTOFF, order=1
    )
    combined = signal(Compartment(together, DIFFUSIVITY), _acquisition())
    axon_mesh = tetrahedralize(model.surfaces[0], thin_part_cells=None, length_scale=0.8 * um)
    other = tetrahedralize(model, thin_part_cells=None, length_scale=0.9 * um)
    assert axon_mesh.n_nodes != other.n_nodes != mesh.n_nodes
    separate = [
        mesh_eigenbasis(axon_mesh.nodes, axon_mesh.elements, length_scale=CUTOFF, order=1),
        mesh_eigenbasis(
            other.nodes, other.elements[other.labels == 1], length_scale=CUTOFF, order=1
        ),
    ]
    np.testing.assert_allclose([float(b.volume) for b in separate], model.volumes, rtol=1e-10)
    independent = _weighted_sum(separate)
    assert float(combined[0].real) == pytest.approx(1.0, abs=1e-12)
    assert (1 - combined.real)[1:].min() > 0.05  # the comparison is not trivial
    torch.testing.assert_close(combined, independent, rtol=0, atol=1e-3)
