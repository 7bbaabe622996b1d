"""The assembled finite-element system of a whole mesh: one block per connected piece.

Assembly (this module) and the eigen-solve (:mod:`mf_dmri.fem.eigen`) are separate steps, so
one :class:`FemSystem` can be solved again for another cutoff or with another solver without
re-assembling.
"""

from __future__ import annotations

from dataclasses import dataclass

from mf_dmri.fem.assembly import DEFAULT_ELEMENT_ORDER, FemMatrices, assemble_piece
from mf_dmri.fem.mesh_input import mesh_arrays, split_pieces


@dataclass(frozen=True)
class FemSystem:
    """Matrices of every connected piece of a (possibly multi-compartment) mesh.

    Args:
        pieces: one :class:`FemMatrices` per connected piece, ordered by label.
        order: Lagrange order (1 or 2).
    """

    pieces: tuple[FemMatrices, ...]
    order: int

    def __post_init__(self) -> None:
        if not self.pieces:
            raise ValueError("a FemSystem needs at least one mesh piece")
        dims = {p.dimension for p in self.pieces}
        if len(dims) != 1:
            raise ValueError("all pieces of a FemSystem must have one dimension")
        if any(p.order != self.order for p in self.pieces):
            raise ValueError("all pieces of a FemSystem must use one element order")

    @property
    def dimension(self) -> int:
        return self.pieces[0].dimension

    @property
    def num_dofs(self) -> int:
        """Total number of degrees of freedom (nodes for P1) over all pieces."""
        return sum(p.num_dofs for p in self.pieces)

    @property
    def volume(self) -> float:
        """Total area/volume [m^d]."""
        return sum(p.volume for p in self.pieces)

    @property
    def mesh_size(self) -> float:
        """Largest element edge length h [m]."""
        return max(p.mesh_size for p in self.pieces)


def assemble_mesh(
    nodes, elements=None, *, element_labels=None, order: int = DEFAULT_ELEMENT_ORDER
) -> FemSystem:
    """Assemble the Neumann Laplace matrices of a triangle or tetrahedron mesh.

    Args:
        nodes: (N, d) node coordinates [m], d = 2 or 3, or a scikit-fem ``MeshTri``/``MeshTet``
            (then leave ``elements`` out).
        elements: (E, d+1) node indices of the triangles/tetrahedra.
        element_labels: optional (E,) integer compartment label per element; compartments are
            impermeable to each other (independent domains).
        order: 1 for P1 or 2 for P2 Lagrange elements (default P2, ``DEFAULT_ELEMENT_ORDER``).

    Returns:
        The :class:`FemSystem` with one block per connected piece of each compartment.
    """
    points, cells, labels = mesh_arrays(nodes, elements, element_labels)
    pieces = split_pieces(points, cells, labels)
    return FemSystem(pieces=tuple(assemble_piece(p, order) for p in pieces), order=order)
