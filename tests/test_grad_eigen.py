"""Differentiable eigen-data of irregular meshes (no degeneracy): values against a dense
generalized eigen-solve of scikit-fem's matrices, gradients against central finite
differences along random directions and single-vertex directions, and gradcheck.

Measured (this machine): relative errors 1e-9..1e-7 against finite differences (step 1e-6
on unit-size meshes), asserted at 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as la
import torch
from grad_helpers import (
    cluster_moment_loss,
    cluster_weights,
    directional_derivatives,
    eigendata,
    fd_directions,
    irregular_disk,
    irregular_ellipsoid,
    mf_signal,
    relative_error,
)
from skfem import Basis, BilinearForm, ElementTriP1, MeshTet, MeshTri
from skfem.helpers import dot, grad

from mf_dmri.fem.differentiable import differentiable_mesh_eigenbasis


def test_values_match_a_dense_eigensolve_of_skfem_matrices():
    nodes, elements = irregular_disk(refine=1, seed=1)
    data = eigendata(nodes, elements, num_modes=15)
    basis = data.eigenbasis
    mesh = MeshTri(nodes.numpy().T, elements.T)
    fem = Basis(mesh, ElementTriP1(), intorder=4)
    stiffness = BilinearForm(lambda u, v, w: dot(grad(u), grad(v))).assemble(fem).toarray()
    mass = BilinearForm(lambda u, v, w: u * v).assemble(fem).toarray()
    q_x = BilinearForm(lambda u, v, w: w.x[0] * u * v).assemble(fem).toarray()
    lam, phi = la.eigh(stiffness, mass)
    count = basis.num_modes
    np.testing.assert_allclose(
        basis.eigenvalues.detach().numpy(), lam[:count], rtol=1e-10, atol=1e-10 * lam[count]
    )
    # gauge-invariant: squared moment entries (signs of eigenvectors are arbitrary)
    reference = (phi[:, :count].T @ q_x @ phi[:, :count]) ** 2
    np.testing.assert_allclose(basis.moments[0].detach().numpy() ** 2, reference, atol=1e-11)
    integrals = basis.mode_integrals.detach().numpy()
    assert integrals[0] == pytest.approx(np.sqrt(mass.sum()), rel=1e-13)
    assert np.abs(integrals[1:]).max() < 1e-12
    assert basis.eigenvalues[0].item() == 0.0


def _losses(nodes, elements, weights, num_modes, direction):
    data = eigendata(nodes, elements, num_modes)
    lam = data.eigenbasis.eigenvalues
    return torch.stack(
        [
            (weights * lam).sum(),
            cluster_moment_loss(data, weights),
            mf_signal(data, direction) * 10.0,
        ]
    )


@pytest.mark.parametrize("case", ["disk", "ellipsoid"])
def test_gradients_match_finite_differences(case):
    if case == "disk":
        nodes, elements = irregular_disk(refine=1, seed=2)
        num_modes, direction = 14, (0.6, 0.8)
    else:
        nodes, elements = irregular_ellipsoid(seed=2)
        num_modes, direction = 12, (0.48, 0.6, 0.64)
    weights = cluster_weights(eigendata(nodes, elements, num_modes), seed=5)

    def losses(x):
        return _losses(x, elements, weights, num_modes, direction)

    exact, finite = directional_derivatives(
        losses, nodes, fd_directions(nodes, elements, 2, seed=1)
    )
    assert np.isfinite(exact).all()
    errors = relative_error(exact, finite)
    assert (errors < 1e-5).all(), (errors, exact, finite)


@pytest.mark.parametrize("dim", [2, 3])
def test_gradcheck_tiny_mesh(dim):
    if dim == 2:
        mesh = MeshTri.init_sqsymmetric().refined(1)
        direction = (0.6, 0.8)
    else:
        mesh = MeshTet.init_tensor(*[np.linspace(0.0, 1.0, 3)] * 3)
        direction = (0.48, 0.6, 0.64)
    rng = np.random.default_rng(7)
    scale = np.array([1.0, 0.83, 0.71][:dim])
    nodes = torch.tensor(
        mesh.p.T * scale + 0.03 * rng.standard_normal(mesh.p.T.shape), requires_grad=True
    )
    elements = mesh.t.T
    weights = torch.linspace(0.5, 1.5, 5, dtype=torch.float64)

    def outputs(x):
        data = eigendata(x, elements, 5)
        lam = data.eigenbasis.eigenvalues
        assert lam.numel() == 5
        return torch.cat(
            [
                lam,
                cluster_moment_loss(data, weights)[None],
                mf_signal(data, direction, time=0.2)[None],
            ]
        )

    assert torch.autograd.gradcheck(outputs, (nodes,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_max_eigenvalue_keeps_every_mode_below_the_cutoff():
    nodes, elements = irregular_disk(refine=1, seed=4)
    full = differentiable_mesh_eigenbasis(nodes, elements, num_modes=30)
    lam = full.eigenvalues.numpy()
    cutoff = 0.5 * (lam[17] + lam[18])
    cut = differentiable_mesh_eigenbasis(nodes, elements, max_eigenvalue=cutoff)
    assert cut.num_modes == 18
    np.testing.assert_allclose(cut.eigenvalues.numpy(), lam[:18], rtol=1e-11, atol=1e-11)


def test_bad_mode_requests_raise():
    nodes, elements = irregular_disk(refine=0, seed=4)
    with pytest.raises(ValueError, match="exactly one"):
        differentiable_mesh_eigenbasis(nodes, elements)
    with pytest.raises(ValueError, match="too few"):
        differentiable_mesh_eigenbasis(nodes, elements, num_modes=10_000)


def test_disconnected_mesh_has_one_exact_zero_mode_per_piece():
    first, elements = irregular_disk(refine=1, seed=5)
    second = first * 0.6 + torch.tensor([3.0, 0.0], dtype=torch.float64)
    nodes = torch.cat([first, second])
    elements = np.concatenate([elements, elements + first.shape[0]])
    data = eigendata(nodes, elements, 12)
    basis = data.eigenbasis
    assert basis.eigenvalues[:2].tolist() == [0.0, 0.0]
    areas = sorted(float(a) for a in basis.mode_integrals[:2] ** 2)
    total = float(basis.volume)
    np.testing.assert_allclose(areas, [total * 0.36 / 1.36, total / 1.36], rtol=1e-12)
    assert np.abs(basis.mode_integrals[2:].detach().numpy()).max() < 1e-12
    weights = cluster_weights(data, seed=1)

    def losses(x):
        d = eigendata(x, elements, 12)
        return torch.stack([cluster_moment_loss(d, weights), mf_signal(d, (0.6, 0.8))])

    exact, finite = directional_derivatives(losses, nodes, fd_directions(nodes, elements, 2, 3))
    errors = relative_error(exact, finite)
    assert (errors < 1e-5).all(), (errors, exact, finite)
