"""Doubled-node permeable meshes: unit matrices, parameters, operator and input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import pgse_pieces
from permeable_helpers import split_rectangle, square_in_square

from mf_dmri.analytic import sphere
from mf_dmri.fem import PermeableParameters, permeable_eigenbasis, permeable_mesh
from mf_dmri.fem.permeable_parameters import exact_null_modes, permeable_operator, resolve
from mf_dmri.signal import Compartment, signal

UM = 1e-6


@pytest.fixture(scope="module")
def rectangle():
    nodes, elements, labels = split_rectangle(10 * UM, (2 * UM, 3 * UM), 10, (2, 3))
    return nodes, elements, labels, permeable_mesh(nodes, elements, element_labels=labels)


def test_doubled_nodes_and_measures(rectangle):
    """Interface nodes are doubled; areas, lengths and volumes are those of the rectangle."""
    nodes, _, _, mesh = rectangle
    assert mesh.num_dofs == nodes.shape[0] + 11  # one copy more of the 11 interface nodes
    assert mesh.interfaces == ((0, 1),)
    assert mesh.interface_areas[0] == pytest.approx(10 * UM, rel=1e-12)
    assert mesh.boundary_areas == pytest.approx((14 * UM, 16 * UM), rel=1e-12)
    assert mesh.volumes == pytest.approx((20 * UM**2, 30 * UM**2), rel=1e-12)
    q = mesh.interface_matrices[0]
    ones = np.ones(mesh.num_dofs)
    assert np.abs(q @ ones).max() < 1e-20  # no flux for equal values on both sides
    jump = mesh.indicator(0)  # u = 1 below, 0 above: integral of the jump^2 = length
    assert jump @ (q @ jump) == pytest.approx(10 * UM, rel=1e-12)
    x = mesh.compartments[0].mass.shape[0]
    assert np.allclose(np.diff(mesh.offsets), [x, mesh.num_dofs - x])


def test_operator_is_the_parameter_combination(rectangle):
    """A = sum D_c K_c + kappa Q + rho_c B_c + M_c / T2_c, m0 = densities, for the BTPDE."""
    *_, mesh = rectangle
    params = PermeableParameters(
        diffusivity=(1e-9, 2e-9),
        permeability=3e-5,
        t2=(0.05, math.inf),
        spin_density=(1.0, 0.5),
        surface_relaxivity=(0.0, 1e-5),
    )
    op = permeable_operator(mesh, params)
    expected = (
        1e-9 * mesh.stiffness(0)
        + 2e-9 * mesh.stiffness(1)
        + 3e-5 * mesh.interface_matrices[0]
        + 1e-5 * mesh.boundary_matrices[1]
        + mesh.compartment_mass(0) / 0.05
    )
    assert abs(op.decay - expected).max() <= 1e-12 * abs(expected).max()
    volumes = np.array(mesh.volumes)
    assert op.initial_signal() == pytest.approx(volumes @ [1.0, 0.5], rel=1e-12)
    assert set(np.unique(op.compartment)) == {0, 1}


def test_null_modes_follow_exchange_and_relaxation(rectangle):
    *_, mesh = rectangle
    mass = mesh.mass

    def nulls(**kwargs):
        return exact_null_modes(mesh, resolve(mesh, PermeableParameters(1e-9, **kwargs)))

    assert nulls(permeability=0.0).shape[1] == 2
    assert nulls(permeability=1e-5).shape[1] == 1
    assert nulls(permeability=0.0, t2=(0.05, math.inf)).shape[1] == 1
    assert nulls(permeability=1e-5, t2=(0.05, math.inf)).shape[1] == 0
    assert nulls(surface_relaxivity=1e-6).shape[1] == 0
    z = nulls(permeability=0.0)
    assert np.allclose(z.T @ (mass @ z), np.eye(2), atol=1e-12)


def test_nested_compartment_has_no_outer_boundary():
    nodes, elements, labels = square_in_square(4 * UM, 2 * UM, 4)
    mesh = permeable_mesh(nodes, elements, element_labels=labels)
    assert mesh.boundary_matrices[1] is None and mesh.boundary_areas[1] == 0.0
    assert mesh.interface_areas[0] == pytest.approx(8 * UM, rel=1e-12)
    assert mesh.boundary_areas[0] == pytest.approx(16 * UM, rel=1e-12)


def test_bad_inputs_raise_clear_errors(rectangle):
    nodes, elements, labels, mesh = rectangle
    with pytest.raises(ValueError, match="non-negative"):
        resolve(mesh, PermeableParameters(1e-9, permeability=-1e-5))
    with pytest.raises(ValueError, match="no interface between"):
        resolve(mesh, PermeableParameters(1e-9, permeability={(0, 2): 1e-5}))
    with pytest.raises(ValueError, match="one per compartment"):
        resolve(mesh, PermeableParameters((1e-9, 1e-9, 1e-9)))
    with pytest.raises(ValueError, match="positive"):
        resolve(mesh, PermeableParameters(1e-9, t2=(0.0, 1.0)))
    with pytest.raises(ValueError, match="exactly one of"):
        permeable_eigenbasis(mesh, PermeableParameters(1e-9), num_modes=5, max_rate=1e3)
    # the same mesh with the interface nodes of label 1 duplicated: non-conforming
    upper = np.unique(elements[labels == 1])
    copy = np.arange(nodes.shape[0]) + 0
    copy[upper] = nodes.shape[0] + np.arange(upper.size)
    split_nodes = np.vstack([nodes, nodes[upper]])
    split_elements = np.where(labels[:, None] == 1, copy[elements], elements)
    with pytest.raises(ValueError, match="non-conforming"):
        permeable_mesh(split_nodes, split_elements, element_labels=labels)


def test_mapping_permeability_and_tensor_parameters(rectangle):
    *_, mesh = rectangle
    kappa = torch.tensor(2e-5, dtype=torch.float64, requires_grad=True)
    resolved = resolve(mesh, PermeableParameters(1e-9, permeability={(1, 0): kappa}))
    assert resolved.permeability.requires_grad
    assert float(resolved.permeability[0].detach()) == pytest.approx(2e-5)


def test_cutoff_keeps_whole_clusters_and_signal_rejects_mixing():
    """A max_rate between the two members of an exactly degenerate pair keeps both; a
    CoupledBasis cannot be mixed with Compartment objects in one signal() call."""
    nodes, elements, labels = square_in_square(6 * UM, 2 * UM, 6)
    mesh = permeable_mesh(nodes, elements, element_labels=labels)
    params = PermeableParameters((2e-9, 1e-9), permeability=3e-5, t2=(0.06, 0.03))
    full = permeable_eigenbasis(mesh, params, num_modes=20).rates.numpy()
    pair = int(np.flatnonzero(np.diff(full) < 1e-10 * full[-1])[0])  # full[pair] == full[pair+1]
    cut = permeable_eigenbasis(mesh, params, max_rate=float(full[pair]) * (1 + 1e-12))
    assert cut.num_modes == pair + 2
    assert np.allclose(cut.rates.numpy(), full[: pair + 2], rtol=1e-10)
    pieces = pgse_pieces(0.01, 0.03, [0.05])
    with pytest.raises(TypeError, match="pass it alone"):
        signal([cut, Compartment(sphere(5 * UM), 2e-9)], pieces)


def test_hanging_nodes_are_rejected():
    """Two layers meshed separately (4 and 8 cells along the common edge): no shared nodes,
    hanging nodes on the interface -> a non-conforming error, not a silent outer boundary."""
    from permeable_helpers import grid_triangles

    low_nodes, low_elements, _ = grid_triangles(np.linspace(0, 4 * UM, 5), np.linspace(0, UM, 2))
    high_nodes, high_elements, _ = grid_triangles(
        np.linspace(0, 4 * UM, 9), np.linspace(UM, 2 * UM, 3)
    )
    nodes = np.vstack([low_nodes, high_nodes])
    elements = np.vstack([low_elements, high_elements + low_nodes.shape[0]])
    labels = np.repeat([0, 1], [low_elements.shape[0], high_elements.shape[0]])
    with pytest.raises(ValueError, match="non-conforming"):
        permeable_mesh(nodes, elements, element_labels=labels)


def test_zero_permeability_operator_equals_the_impermeable_builder(rectangle):
    """kappa = 0: the same operator as bloch_torrey.impermeable_operator on the pieces of
    assemble_mesh (same node order for connected compartments)."""
    from mf_dmri.fem import assemble_mesh
    from mf_dmri.fem.bloch_torrey import impermeable_operator

    nodes, elements, labels, mesh = rectangle
    system = assemble_mesh(nodes, elements, element_labels=labels, order=1)
    reference = impermeable_operator(
        list(system.pieces), [1e-9, 2e-9], t2=[0.05, math.inf], spin_density=[1.0, 0.5]
    )
    params = PermeableParameters((1e-9, 2e-9), t2=(0.05, math.inf), spin_density=(1.0, 0.5))
    operator = permeable_operator(mesh, params)
    for name in ("mass", "decay"):
        difference = abs(getattr(operator, name) - getattr(reference, name)).max()
        assert difference <= 1e-14 * abs(getattr(reference, name)).max()
    assert np.array_equal(operator.initial, reference.initial)
    assert all(abs(a - b).max() == 0 for a, b in zip(operator.moments, reference.moments))
