"""Finite-element (scikit-fem) Neumann Laplace eigenbases of triangle and tetrahedron meshes."""

from mf_dmri.fem.assembly import (
    DEFAULT_ELEMENT_ORDER,
    FemMatrices,
    assemble_piece,
    block_matrices,
)
from mf_dmri.fem.eigen import (
    FemEigenResult,
    cutoff_eigenvalue,
    extend_eigenbasis,
    mesh_eigenbasis,
    mesh_eigenbasis_with_diagnostics,
    solve_eigenbasis,
)
from mf_dmri.fem.eigensolver import IncompleteSpectrumError, ShiftInvertLanczos
from mf_dmri.fem.permeable import PermeableMesh, permeable_mesh
from mf_dmri.fem.permeable_basis import permeable_eigenbasis
from mf_dmri.fem.permeable_parameters import PermeableParameters, permeable_operator
from mf_dmri.fem.planar import (
    cross_section_eigenbasis,
    cross_section_result,
    polygon_eigenbasis,
)
from mf_dmri.fem.polygon import triangulate_polygon
from mf_dmri.fem.system import FemSystem, assemble_mesh

__all__ = [
    "DEFAULT_ELEMENT_ORDER",
    "FemEigenResult",
    "FemMatrices",
    "FemSystem",
    "IncompleteSpectrumError",
    "PermeableMesh",
    "PermeableParameters",
    "ShiftInvertLanczos",
    "assemble_mesh",
    "assemble_piece",
    "block_matrices",
    "cross_section_eigenbasis",
    "cross_section_result",
    "cutoff_eigenvalue",
    "extend_eigenbasis",
    "mesh_eigenbasis",
    "mesh_eigenbasis_with_diagnostics",
    "permeable_eigenbasis",
    "permeable_mesh",
    "permeable_operator",
    "polygon_eigenbasis",
    "solve_eigenbasis",
    "triangulate_polygon",
]
