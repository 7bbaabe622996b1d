"""Permeable multi-compartment P1 finite elements: doubled interface nodes and unit matrices.

Each compartment (element label) gets its own copy of the nodes it uses, so the P1 field
may jump across an interface.  The degrees of freedom are numbered compartment after
compartment (labels ascending).  The decay operator of the Bloch-Torrey system is an explicit
linear combination of fixed *unit matrices* (see :mod:`mf_dmri.fem.permeable_parameters`):

    A = sum_c D_c K_c + sum_(a,b) kappa_ab Q_ab + sum_c rho_c B_c + sum_c M_c / T2_c,

* ``K_c``, ``M_c``: stiffness [m^(d-2)] and mass [m^d] of compartment c (zero elsewhere);
* ``Q_ab`` [m^(d-1)]: interface matrix, ``v^T Q_ab u = integral over Gamma_ab of
  (v_a - v_b)(u_a - u_b) dS``, from the weak form of the flux condition
  ``D_a du_a/dn_a = kappa_ab (u_b - u_a)`` on Gamma_ab (n_a the outward normal of a);
* ``B_c`` [m^(d-1)]: P1 surface mass on the outer boundary of compartment c, from the
  Robin condition ``D_c du/dn + rho_c u = 0`` (surface relaxivity rho_c [m/s]).

Only P1 elements; the mesh must be conforming across interfaces (checked).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from mf_dmri.fem.assembly import FemMatrices, assemble_piece
from mf_dmri.fem.facets import FacetSets, check_conforming, classify_facets, facet_mass_blocks
from mf_dmri.fem.mesh_input import MeshPiece, mesh_arrays, mesh_size


@dataclass(frozen=True, eq=False)
class PermeableMesh:
    """Unit matrices of a labelled simplex mesh with doubled interface nodes.

    Args:
        labels: the compartment labels, ascending; compartment c has label ``labels[c]``.
        compartments: per compartment, its assembled P1 matrices (local numbering).
        offsets: (C + 1,) first global degree of freedom of each compartment (and the total).
        nodes_of_dofs: (N,) index of the original mesh node behind each degree of freedom.
        interfaces: the label pairs (a, b), a < b, that share at least one facet.
        interface_matrices: one (N, N) CSR ``Q_ab`` per interface [m^(d-1)].
        boundary_matrices: per compartment the (N, N) CSR ``B_c`` of its outer boundary
            [m^(d-1)], or None for a compartment without outer boundary.
        interface_areas: length/area of each interface [m^(d-1)].
        boundary_areas: length/area of each compartment's outer boundary [m^(d-1)].
        mesh_size: largest element edge length h [m].
    """

    labels: tuple[int, ...]
    compartments: tuple[FemMatrices, ...]
    offsets: np.ndarray
    nodes_of_dofs: np.ndarray
    interfaces: tuple[tuple[int, int], ...]
    interface_matrices: tuple[sp.csr_matrix, ...]
    boundary_matrices: tuple[sp.csr_matrix | None, ...]
    interface_areas: tuple[float, ...]
    boundary_areas: tuple[float, ...]
    mesh_size: float

    @property
    def num_compartments(self) -> int:
        return len(self.labels)

    @property
    def num_dofs(self) -> int:
        return int(self.offsets[-1])

    @property
    def dimension(self) -> int:
        return self.compartments[0].dimension

    @property
    def volumes(self) -> tuple[float, ...]:
        """Area/volume of each compartment [m^d]."""
        return tuple(c.volume for c in self.compartments)

    @property
    def compartment_of_dofs(self) -> np.ndarray:
        """(N,) compartment index (0..C-1) of each degree of freedom."""
        return np.repeat(np.arange(self.num_compartments), np.diff(self.offsets))

    def embedded(self, blocks: list[sp.spmatrix]) -> sp.csr_matrix:
        """The block-diagonal (N, N) matrix of one (n_c, n_c) block per compartment."""
        return sp.block_diag(blocks, format="csr")

    def stiffness(self, index: int) -> sp.csr_matrix:
        """``K_c`` of compartment ``index`` embedded in the global numbering [m^(d-2)]."""
        return self._only(index, self.compartments[index].stiffness)

    def compartment_mass(self, index: int) -> sp.csr_matrix:
        """``M_c`` of compartment ``index`` embedded in the global numbering [m^d]."""
        return self._only(index, self.compartments[index].mass)

    def _only(self, index: int, block: sp.spmatrix) -> sp.csr_matrix:
        blocks = [
            block if c == index else sp.csr_matrix((p.num_dofs, p.num_dofs))
            for c, p in enumerate(self.compartments)
        ]
        return self.embedded(blocks)

    @cached_property
    def mass(self) -> sp.csr_matrix:
        """Global mass matrix M [m^d]."""
        return self.embedded([p.mass for p in self.compartments])

    @cached_property
    def moments(self) -> tuple[sp.csr_matrix, ...]:
        """Global first-moment matrices J_k [m^(d+1)]."""
        return tuple(
            self.embedded([p.moments[k] for p in self.compartments]) for k in range(self.dimension)
        )

    def indicator(self, index: int) -> np.ndarray:
        """(N,) ones on the degrees of freedom of compartment ``index``, zeros elsewhere."""
        values = np.zeros(self.num_dofs)
        values[self.offsets[index] : self.offsets[index + 1]] = 1.0
        return values


def permeable_mesh(nodes, elements=None, *, element_labels=None) -> PermeableMesh:
    """Doubled-node P1 unit matrices of a labelled triangle/tetrahedron mesh.

    Args:
        nodes: (N, d) node coordinates [m] (d = 2 or 3), a scikit-fem MeshTri/MeshTet, or a
            :class:`mf_dmri.geometry.VolumeMesh` (its ``labels`` are then used).
        elements: (E, d+1) node indices (None for a mesh object).
        element_labels: (E,) integer compartment label of each element; elements of two
            labels sharing a facet form a (permeable) interface.
    """
    if hasattr(nodes, "labels") and hasattr(nodes, "elements") and elements is None:
        if element_labels is None:
            element_labels = nodes.labels
        nodes, elements = nodes.nodes, nodes.elements
    points, cells, labels = mesh_arrays(nodes, elements, element_labels)
    facets = classify_facets(cells, labels)
    size = mesh_size(points, cells)
    check_conforming(points, facets, size)
    unique_labels = np.unique(labels)
    local_index, pieces, used_nodes = [], [], []
    for label in unique_labels:
        sub = cells[labels == label]
        used, local = np.unique(sub, return_inverse=True)
        lookup = np.full(points.shape[0], -1)
        lookup[used] = np.arange(used.size)
        piece = MeshPiece(points[used], local.reshape(sub.shape), int(label))
        pieces.append(assemble_piece(piece, order=1))
        local_index.append(lookup)
        used_nodes.append(used)
    offsets = np.concatenate([[0], np.cumsum([u.size for u in used_nodes])])
    dof_maps = [lookup + offset for lookup, offset in zip(local_index, offsets, strict=False)]
    position = {int(label): i for i, label in enumerate(unique_labels)}
    interfaces, q_mats, q_areas = _interface_matrices(points, facets, dof_maps, position, offsets)
    b_mats, b_areas = _boundary_matrices(points, facets, dof_maps, position, offsets)
    return PermeableMesh(
        labels=tuple(int(x) for x in unique_labels),
        compartments=tuple(pieces),
        offsets=offsets,
        nodes_of_dofs=np.concatenate(used_nodes),
        interfaces=interfaces,
        interface_matrices=q_mats,
        boundary_matrices=b_mats,
        interface_areas=q_areas,
        boundary_areas=b_areas,
        mesh_size=size,
    )


def _scatter(rows: np.ndarray, cols: np.ndarray, blocks: np.ndarray, n: int) -> sp.csr_matrix:
    """Sum of (F, k, k) blocks at (rows (F, k), cols (F, k)) into an (n, n) CSR matrix."""
    k = rows.shape[1]
    r = np.repeat(rows, k, axis=1).reshape(-1)
    c = np.tile(cols, (1, k)).reshape(-1)
    matrix = sp.csr_matrix((blocks.reshape(-1), (r, c)), shape=(n, n))
    return ((matrix + matrix.T) * 0.5).tocsr()


def _interface_matrices(points, facets: FacetSets, dof_maps, position, offsets):
    n = int(offsets[-1])
    pairs = sorted({(int(a), int(b)) for a, b in facets.interface_labels})
    matrices, areas = [], []
    for a, b in pairs:
        chosen = (facets.interface_labels[:, 0] == a) & (facets.interface_labels[:, 1] == b)
        faces = facets.interface[chosen]
        blocks = facet_mass_blocks(points, faces)
        dofs = np.hstack([dof_maps[position[a]][faces], dof_maps[position[b]][faces]])
        signed = np.block([[blocks, -blocks], [-blocks, blocks]])
        matrices.append(_scatter(dofs, dofs, signed, n))
        areas.append(float(np.einsum("fij->f", blocks).sum()))
    return tuple(pairs), tuple(matrices), tuple(areas)


def _boundary_matrices(points, facets: FacetSets, dof_maps, position, offsets):
    n = int(offsets[-1])
    matrices: list[sp.csr_matrix | None] = []
    areas = []
    for label, index in sorted(position.items(), key=lambda item: item[1]):
        faces = facets.boundary[facets.boundary_label == label]
        if faces.shape[0] == 0:
            matrices.append(None)
            areas.append(0.0)
            continue
        blocks = facet_mass_blocks(points, faces)
        dofs = dof_maps[index][faces]
        matrices.append(_scatter(dofs, dofs, blocks, n))
        areas.append(float(blocks.sum()))
    return tuple(matrices), tuple(areas)
