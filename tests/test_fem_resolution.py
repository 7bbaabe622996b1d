"""Mesh resolution against the cutoff (mf_dmri.fem.resolution): a needle meshed with two
elements along its length, and a cutoff finer than the mesh, are flagged; a mesh that
resolves the cutoff is not.  The needle's exact Neumann spectrum is the box's,
pi^2 (i^2/L^2 + j^2/r^2 + k^2/r^2): the cutoff 10.5 pi/L asks for 11 modes along its length."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from skfem import MeshTet, MeshTri

from mf_dmri.fem.eigen import mesh_eigenbasis
from mf_dmri.fem.resolution import ResolutionWarning


def needle(nodes_along: int):
    length, side = 100e-6, 1e-6
    mesh = MeshTet.init_tensor(
        np.linspace(0, length, nodes_along), np.linspace(0, side, 2), np.linspace(0, side, 2)
    )
    return mesh.p.T, mesh.t.T, (10.5 * np.pi / length) ** 2


def test_needle_with_few_elements_along_it_is_flagged():
    nodes, elements, cutoff = needle(3)
    with pytest.warns(ResolutionWarning, match="cannot represent the modes of wavelength"):
        basis = mesh_eigenbasis(nodes, elements, max_eigenvalue=cutoff, order=1)
    assert basis.eigenvalues.numel() == 3  # exact: 11 modes (i = 0..10)


def test_resolved_needle_keeps_the_modes_asked_for():
    nodes, elements, cutoff = needle(81)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResolutionWarning)
        basis = mesh_eigenbasis(nodes, elements, max_eigenvalue=cutoff, order=1)
    exact = (np.pi * np.arange(11) / 100e-6) ** 2
    np.testing.assert_allclose(basis.eigenvalues.numpy(), exact, rtol=1.5e-2, atol=1e-3 * exact[1])


def test_cutoff_finer_than_the_mesh_is_flagged_and_strict_raises():
    disk = MeshTri.init_circle(2)
    nodes = disk.p.T * 5e-6
    with pytest.warns(ResolutionWarning, match="finer than the mesh"):
        basis = mesh_eigenbasis(nodes, disk.t.T, length_scale=0.05e-6, order=1)
    assert basis.eigenvalues.numel() == nodes.shape[0]  # every degree of freedom
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResolutionWarning)
        with pytest.raises(ResolutionWarning):
            mesh_eigenbasis(nodes, disk.t.T, length_scale=0.05e-6, order=1)


def test_resolved_disk_is_not_flagged():
    disk = MeshTri.init_circle(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResolutionWarning)
        mesh_eigenbasis(disk.p.T * 5e-6, disk.t.T, length_scale=5e-6, order=1)
