"""Signal-level geometry gradients on realistic meshes (issue 4 acceptance):

* uniform scaling: d(signal)/d(radius) through the mesh path (nodes = r x unit mesh)
  agrees with the exact derivative of the analytic basis (cylinder cross-section and
  sphere) to the FEM accuracy;
* a bent (undulating) tube and the neuron-like test mesh: the vertex gradient of a PGSE
  signal matches central finite differences along random vertex directions (and, for the
  neuron, along single vertices).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import pgse_pieces

from mf_dmri import units
from mf_dmri.analytic import cylinder, sphere
from mf_dmri.eigenbasis import ProductDomain
from mf_dmri.fem.differentiable import differentiable_mesh_eigenbasis
from mf_dmri.geometry import generators, tetrahedralize
from mf_dmri.geometry import neuron as generators_neuron
from mf_dmri.signal import Compartment, signal

D = 2e-9
PIECES = pgse_pieces(8 * units.ms, 20 * units.ms, [0.04, 0.08], (0.6, 0.0, 0.8))


def _mesh_signal(nodes, elements, num_modes, planar=False):
    basis = differentiable_mesh_eigenbasis(nodes, elements, num_modes=num_modes)
    if planar:
        domain = ProductDomain((basis,), free_axes=torch.tensor([[0.0, 0.0, 1.0]]))
    else:
        domain = basis
    return signal(Compartment(domain, D), PIECES).real


def _radius_derivative(nodes_unit, elements, radius, num_modes, planar):
    r = torch.tensor(radius, dtype=torch.float64, requires_grad=True)
    values = _mesh_signal(r * nodes_unit, elements, num_modes, planar)
    return torch.stack([torch.autograd.grad(v, r, retain_graph=True)[0] for v in values])


def _analytic_derivative(builder, radius):
    r = torch.tensor(radius, dtype=torch.float64, requires_grad=True)
    values = signal(Compartment(builder(r), D), PIECES).real
    return torch.stack([torch.autograd.grad(v, r, retain_graph=True)[0] for v in values])


def test_uniform_scaling_matches_analytic_disk():
    from skfem import MeshTri

    mesh = MeshTri.init_circle().refined(3)
    nodes, elements = torch.tensor(mesh.p.T.copy()), mesh.t.T.copy()
    radius = 4 * units.um
    fem = _radius_derivative(nodes, elements, radius, 40, planar=True)
    exact = _analytic_derivative(lambda r: cylinder(r), radius)
    torch.testing.assert_close(fem, exact, rtol=2e-2, atol=0)


def test_uniform_scaling_matches_analytic_sphere():
    volume = tetrahedralize(generators.sphere(1.0 * units.um, subdivisions=3))
    nodes = torch.tensor(np.asarray(volume.nodes) / units.um)
    fem = _radius_derivative(nodes, np.asarray(volume.elements), 4 * units.um, 30, False)
    exact = _analytic_derivative(lambda r: sphere(r), 4 * units.um)
    torch.testing.assert_close(fem, exact, rtol=3e-2, atol=0)


def _fd_check(nodes, elements, num_modes, seed, rel_tol, step=None):
    """Autograd vs central differences along two random directions in vertex space, with
    ``step`` [m] (default 1e-6 of the mesh extent); returns the relative errors."""
    rng = np.random.default_rng(seed)
    x = nodes.clone().requires_grad_(True)
    total = _mesh_signal(x, elements, num_modes).sum()
    grad = torch.autograd.grad(total, x)[0]
    step = 1e-6 * float(nodes.abs().max()) if step is None else step
    errors = []
    for _ in range(2):
        direction = torch.tensor(rng.normal(size=nodes.shape))
        finite = _central_difference(nodes, elements, num_modes, direction, step)
        exact = float((grad * direction).sum())
        errors.append(abs(exact - finite) / abs(finite))
        assert exact == pytest.approx(finite, rel=1e-5)
    return grad, errors


def _central_difference(nodes, elements, num_modes, direction, step):
    plus = _mesh_signal(nodes + step * direction, elements, num_modes).sum()
    minus = _mesh_signal(nodes - step * direction, elements, num_modes).sum()
    return float(plus - minus) / (2 * step)


def _shortest_edges(nodes: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """Length of the shortest mesh edge at each node [m]."""
    pairs = np.concatenate([elements[:, [a, b]] for a in range(4) for b in range(a + 1, 4)])
    lengths = np.linalg.norm(nodes[pairs[:, 0]] - nodes[pairs[:, 1]], axis=1)
    shortest = np.full(len(nodes), np.inf)
    np.minimum.at(shortest, pairs[:, 0], lengths)
    np.minimum.at(shortest, pairs[:, 1], lengths)
    return shortest


def test_bent_tube_vertex_gradient():
    surface = generators.undulating_axon(
        1.0 * units.um, 8 * units.um, 0.8 * units.um, 8 * units.um, segments=16
    )
    volume = tetrahedralize(surface, length_scale=0.8 * units.um)
    _fd_check(torch.tensor(np.asarray(volume.nodes)), np.asarray(volume.elements), 20, 0, 1e-4)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tetgen") is None, reason="tetgen missing")
def test_neuron_like_mesh_vertex_gradient():
    """The generated neuron (tests/data) meshed with TetGen (netgen leaves near-degenerate
    tetrahedra at its soma-neurite junctions, docs/meshing.md).  TetGen keeps sliver
    tetrahedra inherited from sliver surface triangles: the shortest edge is 0.12 nm on a
    32 um cell.  A step of 1e-6 of the cell (3e-11 m per coordinate) is a quarter of that
    edge and inverts elements, so the differences are taken with 1e-2 of the shortest edge
    of the mesh (random directions) or 1e-3 of the vertex's (single vertices), below which
    every element deforms linearly (docs/eigen_derivatives.md, section 8).  Measured:
    3.7e-7 and 1.3e-7 (random directions), 4.1e-9 and 4.5e-8 (single vertices)."""
    from mf_dmri.io.mesh import load_surface

    surface = load_surface(Path(__file__).parent / "data" / "neuron_seed1.ply", unit=units.um)
    volume = tetrahedralize(surface, method="tetgen")
    nodes, elements = np.asarray(volume.nodes), np.asarray(volume.elements)
    shortest = _shortest_edges(nodes, elements)
    tensor = torch.tensor(nodes)
    grad, _ = _fd_check(tensor, elements, 20, 1, 1e-5, step=1e-2 * shortest.min())
    # single vertices: the largest gradient, and the 90th percentile of the gradient norm
    # (for vertices of negligible influence the signal change is below double precision)
    norms = torch.linalg.vector_norm(grad, dim=1).numpy()
    rng = np.random.default_rng(2)
    for vertex in (int(norms.argmax()), int(np.argsort(norms)[-len(norms) // 10])):
        direction = torch.zeros_like(tensor)
        direction[vertex] = torch.tensor(rng.normal(size=3))
        step = 1e-3 * shortest[vertex]
        finite = _central_difference(tensor, elements, 20, direction, step)
        exact = float((grad * direction).sum())
        assert exact == pytest.approx(finite, rel=1e-5)


def test_smooth_neuron_vertex_gradient():
    """A neuron-like cell without slivers: the bipolar neuron (soma and two tapered, bent
    neurites as one smooth tube) meshed by netgen.  Its shortest edge is ~0.1 um, so the
    default step (1e-6 of the extent) is far inside the linear range.  Measured: 5.3e-7 and
    6.5e-7 (with seed 0; docs/eigen_derivatives.md, section 8)."""
    surface = generators_neuron.bipolar_neuron(
        3 * units.um, 0.8 * units.um, 0.4 * units.um, 24 * units.um, bend_radius=15 * units.um
    )
    volume = tetrahedralize(surface, length_scale=0.6 * units.um)
    nodes, elements = np.asarray(volume.nodes), np.asarray(volume.elements)
    assert _shortest_edges(nodes, elements).min() > 0.05 * units.um
    _fd_check(torch.tensor(nodes), elements, 20, 0, 1e-5)
