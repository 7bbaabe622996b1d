"""The 2-D cross-section path: polygons, lab-frame axes, and the square's closed form
lambda = pi^2 (m^2 + n^2) / a^2 (Grebenkov, Rev. Mod. Phys. 79, 1077 (2007), Sec. IV)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skfem import MeshTri

from mf_dmri.fem import (
    cross_section_eigenbasis,
    mesh_eigenbasis,
    polygon_eigenbasis,
    triangulate_polygon,
)

SIDE = 10e-6  # [m]
SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]) * SIDE
L_SHAPE = np.array([[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]], dtype=float) * 1e-6


def test_square_polygon_converges_to_closed_form():
    unit = (np.pi / SIDE) ** 2
    errors = []
    for size in (SIDE / 8, SIDE / 16):
        basis = polygon_eigenbasis(SQUARE, mesh_size=size, max_eigenvalue=2.5 * unit, order=1)
        lam = basis.eigenvalues.numpy() / unit
        assert basis.num_modes == 4
        errors.append(np.abs(lam[1:] - [1, 1, 2]).max())
    assert errors[1] < 0.35 * errors[0]  # P1: about 1/4 per halving of h
    assert errors[1] < 2e-2


def test_triangulated_polygon_conforms_and_is_nonconvex_safe():
    nodes, triangles = triangulate_polygon(L_SHAPE, 0.1e-6)
    edges = nodes[triangles[:, 1:]] - nodes[triangles[:, :1]]
    area = 0.5 * np.abs(edges[:, 0, 0] * edges[:, 1, 1] - edges[:, 0, 1] * edges[:, 1, 0]).sum()
    assert area == pytest.approx(3e-12, rel=1e-12)
    # the same domain meshed by scikit-fem gives the same low spectrum
    reference = MeshTri.init_lshaped().refined(4)
    reference = MeshTri((reference.p + 1.0) * 1e-6, reference.t)  # [-1,1]^2 L -> [0,2]um
    ours = mesh_eigenbasis(nodes, triangles, max_eigenvalue=2e13, order=1).eigenvalues.numpy()
    theirs = mesh_eigenbasis(reference, max_eigenvalue=2e13, order=1).eigenvalues.numpy()
    n = min(ours.size, theirs.size, 5)
    np.testing.assert_allclose(ours[1:n], theirs[1:n], rtol=2e-2)


def test_axes_place_the_section_in_the_lab_frame():
    axes = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    basis = polygon_eigenbasis(SQUARE, mesh_size=SIDE / 6, max_eigenvalue=3e11, axes=axes, order=1)
    assert basis.dimension == 2
    np.testing.assert_array_equal(basis.axes.numpy(), axes)
    along_z = basis.directional_moment(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(along_z, basis.moments[0])
    assert float(basis.volume) == pytest.approx(SIDE**2, rel=1e-12)


def test_planar_input_errors():
    with pytest.raises(ValueError, match="self"):
        polygon_eigenbasis(SQUARE[[0, 2, 1, 3]], mesh_size=SIDE / 4, max_eigenvalue=1e11, order=1)
    with pytest.raises(ValueError, match="repeat"):
        triangulate_polygon(np.vstack([SQUARE, SQUARE[:1]]), SIDE / 4)
    with pytest.raises(ValueError, match="orthonormal"):
        polygon_eigenbasis(
            SQUARE,
            mesh_size=SIDE / 4,
            max_eigenvalue=1e11,
            axes=[[1.0, 0, 0], [1.0, 0, 0]],
            order=1,
        )
    with pytest.raises(ValueError, match="2-D"):
        cross_section_eigenbasis(
            np.zeros((4, 3)), np.array([[0, 1, 2, 3]]), max_eigenvalue=1.0, order=1
        )
    with pytest.raises(ValueError, match="mesh_size"):
        triangulate_polygon(SQUARE, -1.0)
