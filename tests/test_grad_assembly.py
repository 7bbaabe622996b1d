"""Differentiable P1 assembly: equal to scikit-fem's quadrature assembly, and its autograd
derivatives equal finite differences (torch.autograd.gradcheck)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skfem import Basis, BilinearForm, ElementTetP1, ElementTriP1, MeshTet, MeshTri
from skfem.helpers import dot, grad

from mf_dmri.fem.torch_assembly import assemble_p1, element_orientation


def _skfem_matrices(mesh, element):
    basis = Basis(mesh, element, intorder=4)
    stiffness = BilinearForm(lambda u, v, w: dot(grad(u), grad(v))).assemble(basis)
    mass = BilinearForm(lambda u, v, w: u * v).assemble(basis)
    moments = [
        BilinearForm(lambda u, v, w, k=k: w.x[k] * u * v).assemble(basis)
        for k in range(mesh.p.shape[0])
    ]
    return stiffness, mass, moments


@pytest.mark.parametrize(
    "mesh, element, noise",
    [
        (MeshTet.init_ball().refined(1), ElementTetP1(), 0.005),
        (MeshTri.init_circle().refined(1), ElementTriP1(), 0.01),
        (MeshTet.init_tensor(*[np.linspace(0.0, 2e-6, 5)] * 3), ElementTetP1(), 1e-8),
    ],
    ids=["ball", "disk", "cube_in_m"],
)
def test_torch_assembly_equals_skfem(mesh, element, noise):
    rng = np.random.default_rng(3)
    mesh = type(mesh)(mesh.p + noise * rng.standard_normal(mesh.p.shape), mesh.t)
    stiffness, mass, moments = _skfem_matrices(mesh, element)
    p1 = assemble_p1(torch.tensor(mesh.p.T), mesh.t.T)
    pairs = [(stiffness, p1.stiffness), (mass, p1.mass)]
    pairs += [(ref, p1.moments[k]) for k, ref in enumerate(moments)]
    for reference, values in pairs:
        ours = p1.to_scipy(values)
        assert abs(ours - reference).max() <= 1e-12 * abs(reference).max()
    assert float(p1.volume()) == pytest.approx(mass.sum(), rel=1e-13)
    dense = p1.to_torch_sparse(p1.stiffness).to_dense().numpy()
    assert np.abs(dense - stiffness.toarray()).max() <= 1e-12 * abs(stiffness).max()


@pytest.mark.parametrize("dim", [2, 3])
def test_assembly_gradcheck(dim):
    """Element matrices are smooth functions of the nodes: autograd == finite differences."""
    if dim == 2:
        mesh = MeshTri.init_sqsymmetric()
    else:
        mesh = MeshTet.init_tensor(*[np.linspace(0.0, 1.0, 3)] * 3)
    rng = np.random.default_rng(0)
    nodes = torch.tensor(mesh.p.T + 0.05 * rng.standard_normal(mesh.p.T.shape), requires_grad=True)
    el = mesh.t.T

    def outputs(x):
        p1 = assemble_p1(x, el)
        return p1.stiffness, p1.mass, p1.moments, p1.volume()

    assert torch.autograd.gradcheck(outputs, (nodes,), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_inverted_element_raises_with_a_fix():
    mesh = MeshTri.init_sqsymmetric()
    nodes = torch.tensor(mesh.p.T.copy())
    orientation = element_orientation(nodes, mesh.t.T)
    folded = nodes.clone()
    folded[4] = torch.tensor([3.0, 3.0])  # the centre node pushed far outside
    with pytest.raises(ValueError, match="inverted.*smaller step"):
        assemble_p1(folded, mesh.t.T, orientation)
    assemble_p1(nodes, mesh.t.T, orientation)  # the reference itself is fine


def test_bad_inputs_raise():
    mesh = MeshTri.init_sqsymmetric()
    with pytest.raises(TypeError, match="float64"):
        assemble_p1(torch.tensor(mesh.p.T, dtype=torch.float32), mesh.t.T)
    with pytest.raises(ValueError, match="shape"):
        assemble_p1(torch.tensor(mesh.p.T), mesh.t.T[:, :2])
    nodes = torch.tensor(mesh.p.T.copy())
    nodes[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        assemble_p1(nodes, mesh.t.T)
