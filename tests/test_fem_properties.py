"""Structural properties of FEM eigenbases: exact zero modes, moments, sum rules, pieces,
clusters, solver agreement and input checks.

Closed forms: the coupling of the constant mode to the first m=1 (disk) / l=1 (ball) cluster,
sum over the cluster of Q_x[0, j]^2 = 2 R^2 / (a^2 (a^2 - 1)) (disk, a = j'_{1,1}) and
2 R^2 / (a^2 (a^2 - 2)) (ball, a = first zero of j_1'), from the normalised Neumann modes of
Grebenkov, Rev. Mod. Phys. 79, 1077 (2007), Sec. IV (the same numbers as in its Table II).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import jnp_zeros
from skfem import MeshTet, MeshTri

from mf_dmri.eigenbasis import Eigenbasis
from mf_dmri.fem import (
    ShiftInvertLanczos,
    assemble_mesh,
    mesh_eigenbasis_with_diagnostics,
    solve_eigenbasis,
)

RADIUS = 5e-6  # [m]
#: dense LAPACK on these small meshes: a cutoff taken from one solve is hit exactly by the next
DENSE = ShiftInvertLanczos(dense_limit=10**6)
#: the sparse path (block Lanczos) even on small meshes
SPARSE = ShiftInvertLanczos(dense_limit=0)


def disk(refinements: int, radius: float = RADIUS):
    mesh = MeshTri.init_circle(refinements)
    return mesh.p.T * radius, mesh.t.T


def second_moment_over_volume(nodes, elements) -> float:
    """(1/V) integral of x_0^2 over a simplex mesh, exact per simplex."""
    corners = nodes[elements][..., 0]
    edges = nodes[elements[:, 1:]] - nodes[elements[:, :1]]
    dim = nodes.shape[1]
    measure = np.abs(np.linalg.det(edges)) / (2.0 if dim == 2 else 6.0)
    integral = measure / ((dim + 1) * (dim + 2)) * ((corners**2).sum(1) + corners.sum(1) ** 2)
    return float(integral.sum() / measure.sum())


def test_zero_mode_exact_and_mode_integrals():
    result = mesh_eigenbasis_with_diagnostics(*disk(4), length_scale=1.5 * RADIUS, order=1)
    basis = result.basis
    assert isinstance(basis, Eigenbasis)
    volume = float(basis.volume)
    assert basis.eigenvalues[0].item() == 0.0
    assert basis.mode_integrals[0].item() == pytest.approx(np.sqrt(volume), rel=1e-13)
    assert np.abs(basis.mode_integrals[1:].numpy()).max() < 1e-12 * np.sqrt(volume)
    assert basis.eigenvalues[-1] <= (2 * np.pi / (1.5 * RADIUS)) ** 2 * (1 + 1e-6)
    assert result.residuals.max() < 1e-8
    assert np.all(np.diff(result.apriori_errors) >= 0)
    np.testing.assert_array_equal(basis.axes.numpy(), np.eye(3)[:2])


def test_moments_symmetric_and_disk_coupling_closed_form():
    nodes, elements = disk(5)
    basis = mesh_eigenbasis_with_diagnostics(
        nodes, elements, max_eigenvalue=60 / RADIUS**2, order=1
    ).basis
    q = basis.moments.numpy()
    np.testing.assert_array_equal(q, q.transpose(0, 2, 1))
    a = jnp_zeros(1, 1)[0]
    pair = q[0, 0, 1:3] ** 2 + q[1, 0, 1:3] ** 2  # x and y couplings of the m=1 pair
    assert pair.sum() / 2 == pytest.approx(2 * RADIUS**2 / (a**2 * (a**2 - 1)), rel=3e-3)
    # sum rule: sum_j Q_x[0, j]^2 -> (1/V) integral x^2 (the tail past the cutoff is tiny)
    total = (q[0, 0, :] ** 2).sum()
    exact = second_moment_over_volume(nodes, elements)
    assert total <= exact * (1 + 1e-12)
    assert total == pytest.approx(exact, rel=2e-3)


def test_ball_coupling_and_sum_rule():
    mesh = MeshTet.init_ball(3)
    nodes, elements = mesh.p.T * RADIUS, mesh.t.T
    basis = mesh_eigenbasis_with_diagnostics(
        nodes, elements, max_eigenvalue=30 / RADIUS**2, order=1
    ).basis
    q = basis.moments.numpy()
    a = 2.0815759778  # first zero of j_1'
    triplet = sum((q[k, 0, 1:4] ** 2).sum() for k in range(3)) / 3
    assert triplet == pytest.approx(2 * RADIUS**2 / (a**2 * (a**2 - 2)), rel=3e-2)
    total, exact = (q[0, 0, :] ** 2).sum(), second_moment_over_volume(nodes, elements)
    assert total <= exact * (1 + 1e-12)
    assert total == pytest.approx(exact, rel=1e-2)
    assert exact == pytest.approx(RADIUS**2 / 5, rel=0.1)  # the polyhedral ball


def test_exactly_degenerate_cluster_is_not_cut():
    nodes, elements = disk(4)
    full = mesh_eigenbasis_with_diagnostics(
        nodes, elements, max_eigenvalue=20 / RADIUS**2, solver=DENSE, order=1
    )
    lam = full.basis.eigenvalues.numpy()
    assert abs(lam[2] - lam[1]) < 1e-9 * lam[1]  # the m=1 pair (4-fold symmetric mesh)
    for cutoff in (min(lam[1], lam[2]), lam[1] * (1 - 1e-8)):
        basis = mesh_eigenbasis_with_diagnostics(
            nodes, elements, max_eigenvalue=cutoff, solver=DENSE, order=1
        ).basis
        assert basis.num_modes == (3 if cutoff >= min(lam[1], lam[2]) else 1)


def test_cluster_tolerance_keeps_split_pair():
    nodes, elements = disk(4)
    lam = mesh_eigenbasis_with_diagnostics(
        nodes, elements, max_eigenvalue=12 / RADIUS**2, solver=DENSE, order=1
    ).basis.eigenvalues.numpy()
    gap = (lam[4] - lam[3]) / lam[4]  # the m=2 pair, split by the mesh
    assert gap > 1e-5
    cut = mesh_eigenbasis_with_diagnostics(
        nodes, elements, max_eigenvalue=lam[3], solver=DENSE, order=1
    )
    kept = mesh_eigenbasis_with_diagnostics(
        nodes, elements, max_eigenvalue=lam[3], cluster_rtol=5 * gap, solver=DENSE, order=1
    )
    assert cut.basis.num_modes == 4 and kept.basis.num_modes == 5


def test_disconnected_pieces_and_labels():
    nodes, elements = disk(3)
    shifted = nodes + np.array([3 * RADIUS, 0.0])
    two_nodes = np.concatenate([nodes, shifted * [1, 1]])
    two_elements = np.concatenate([elements, elements + len(nodes)])
    single = mesh_eigenbasis_with_diagnostics(
        nodes, elements, max_eigenvalue=20 / RADIUS**2, order=1
    )
    double = mesh_eigenbasis_with_diagnostics(
        two_nodes, two_elements, max_eigenvalue=20 / RADIUS**2, order=1
    )
    assert double.num_pieces == 2
    lam1, lam2 = single.basis.eigenvalues.numpy(), double.basis.eigenvalues.numpy()
    np.testing.assert_allclose(lam2, np.repeat(lam1, 2), rtol=1e-9, atol=1e-30)
    assert lam2[0] == lam2[1] == 0.0
    np.testing.assert_allclose(
        double.basis.mode_integrals[:2].numpy(), np.sqrt(float(single.basis.volume)), rtol=1e-12
    )
    assert float(double.basis.volume) == pytest.approx(2 * float(single.basis.volume))
    q = double.basis.moments.numpy()
    assert np.all(q[:, double.piece_index[:, None] != double.piece_index[None, :]] == 0)


def test_labels_make_impermeable_compartments():
    grid = np.linspace(0.0, 4e-6, 9)
    mesh = MeshTet.init_tensor(grid, grid, grid)
    nodes, elements = mesh.p.T, mesh.t.T
    left = nodes[elements].mean(axis=1)[:, 0] < 2e-6
    labelled = mesh_eigenbasis_with_diagnostics(
        nodes, elements, element_labels=left.astype(int), max_eigenvalue=8e12, order=1
    )
    halves = [
        mesh_eigenbasis_with_diagnostics(nodes, elements[mask], max_eigenvalue=8e12, order=1)
        for mask in (left, ~left)
    ]
    expected = np.sort(np.concatenate([h.basis.eigenvalues.numpy() for h in halves]))
    assert labelled.num_pieces == 2
    np.testing.assert_allclose(labelled.basis.eigenvalues.numpy(), expected, rtol=1e-9)


@pytest.mark.parametrize(("refinements", "cutoff", "modes"), [(5, 80, 20), (4, 30, 10)])
def test_block_lanczos_agrees_with_dense(refinements, cutoff, modes):
    """The sparse path against LAPACK on the same matrices (rotation-invariant moments)."""
    system = assemble_mesh(*disk(refinements), order=1)
    reference = solve_eigenbasis(system, max_eigenvalue=cutoff / RADIUS**2, solver=DENSE)
    other = solve_eigenbasis(system, max_eigenvalue=cutoff / RADIUS**2, solver=SPARSE)
    assert other.solver == "block-lanczos" and reference.solver == "dense"
    assert reference.basis.num_modes > modes
    np.testing.assert_allclose(
        other.basis.eigenvalues.numpy(), reference.basis.eigenvalues.numpy(), rtol=1e-9, atol=0
    )
    assert other.residuals.max() < SPARSE.tolerance  # the solver's stated guarantee
    # rotation-invariant moment checks (degenerate pairs may come out rotated)
    for k in range(2):
        assert np.linalg.norm(other.basis.moments[k]) == pytest.approx(
            np.linalg.norm(reference.basis.moments[k]), rel=1e-8
        )


def test_p2_zero_mode_and_integrals():
    result = mesh_eigenbasis_with_diagnostics(*disk(3), max_eigenvalue=20 / RADIUS**2, order=2)
    assert result.num_nodes > 145 and result.basis.eigenvalues[0].item() == 0.0
    assert np.abs(result.basis.mode_integrals[1:].numpy()).max() < 1e-12 * RADIUS
    assert result.residuals.max() < 1e-8


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda n, e: (n * np.nan, e), "NaN"),
        (lambda n, e: (n, e + 1), "1-based"),
        (lambda n, e: (n, e[:, :2]), "triangles"),
        (lambda n, e: (n, np.vstack([e, [[0, 0, 1]]])), "repeats a node"),
        (
            lambda n, e: (np.vstack([n, n[:2].mean(0)]), np.vstack([e, [[0, 1, len(n)]]])),
            "zero area",
        ),
    ],
)
def test_bad_meshes_raise(change, message):
    nodes, elements = change(*disk(2))
    with pytest.raises(ValueError, match=message):
        mesh_eigenbasis_with_diagnostics(nodes, elements, max_eigenvalue=1e12, order=1)


def test_small_well_shaped_elements_kept_flat_ones_refused():
    """The flat-element test is a shape test: a regular tetrahedron 1e-5 of the mesh wide
    passes (as in a fine region of a large cell), one flattened to a height of 1e-7 of
    its edge is refused whatever its size."""
    from mf_dmri.fem.mesh_input import mesh_arrays

    regular = np.array(
        [[0, 0, 0], [1, 0, 0], [0.5, 3**0.5 / 2, 0], [0.5, 3**0.5 / 6, (2 / 3) ** 0.5]]
    )
    large = regular * 1e-4
    nodes = np.vstack([large, 1e-9 * regular + 5e-4])
    elements = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    mesh_arrays(nodes, elements)
    flat = nodes.copy()
    flat[7, 2] = flat[4, 2] + 1e-7 * 1e-9
    with pytest.raises(ValueError, match=r"1 element\(s\) have zero area/volume.*first index 1"):
        mesh_arrays(flat, elements)


def test_the_flat_netgen_tetrahedron_of_a_remeshed_navis_cell_is_refused():
    """The worst of the 57,860 netgen tetrahedra on a remeshed navis 754534424 surface [um]
    (measure 1.3e-6 x longest edge^3, filling a fold of the surface) passed the former
    1e-6 test and the P2 eigen-solve stopped at residuals of 6e-5 (ResidualFloorError).
    The worst of the meshes that solved (9.4e-5) still passes."""
    from mf_dmri.fem.mesh_input import element_measures, mesh_arrays

    fold = 1e-6 * np.array(
        [
            [127.26771466, 122.24465596, 93.99699504],
            [127.54592062, 122.10467090, 93.63494882],
            [127.61844213, 122.51765614, 93.93062883],
            [127.43648909, 122.46903485, 94.04578208],
        ]
    )
    longest = max(np.linalg.norm(p - q) for p in fold for q in fold)
    assert 1e-6 < element_measures(fold, np.array([[0, 1, 2, 3]]))[0] / longest**3 < 2e-6
    with pytest.raises(ValueError, match="zero area/volume.*tetwild"):
        mesh_arrays(fold, np.array([[0, 1, 2, 3]]))
    # a regular tetrahedron flattened to 9.4e-5 x edge^3 (height 6.5e-4 of its edge) passes
    kept = np.array([[0, 0, 0], [1, 0, 0], [0.5, 3**0.5 / 2, 0], [0.5, 3**0.5 / 6, 6.5e-4]])
    mesh_arrays(1e-6 * kept, np.array([[0, 1, 2, 3]]))


def test_bad_settings_raise():
    nodes, elements = disk(2)
    with pytest.raises(ValueError, match="exactly one"):
        mesh_eigenbasis_with_diagnostics(nodes, elements, order=1)
    with pytest.raises(ValueError, match="exactly one"):
        mesh_eigenbasis_with_diagnostics(
            nodes, elements, length_scale=1e-6, max_eigenvalue=1.0, order=1
        )
    with pytest.raises(ValueError, match="positive"):
        mesh_eigenbasis_with_diagnostics(nodes, elements, length_scale=-1e-6, order=1)
    with pytest.raises(TypeError, match="ShiftInvertLanczos"):
        mesh_eigenbasis_with_diagnostics(
            nodes, elements, max_eigenvalue=1e12, solver="magic", order=1
        )
    with pytest.raises(ValueError, match="block_size"):
        ShiftInvertLanczos(block_size=0)
    with pytest.raises(ValueError, match="order"):
        mesh_eigenbasis_with_diagnostics(nodes, elements, max_eigenvalue=1e12, order=3)
