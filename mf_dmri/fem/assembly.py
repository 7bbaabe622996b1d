"""scikit-fem assembly of the Neumann Laplace matrices of a mesh piece (P1 or P2 Lagrange).

For a piece with Lagrange basis functions ``phi_i`` (i = 1..n dofs):

* stiffness ``K_ij = integral of grad phi_i . grad phi_j dV``  [m^(d-2)]
* mass ``M_ij = integral of phi_i phi_j dV``                     [m^d]
* first moments ``Q_k,ij = integral of x_k phi_i phi_j dV``      [m^(d+1)]

all as scipy CSR matrices, exact for affine elements (the quadrature order is 2 p + 1).
Several compartments give several independent pieces (see :mod:`mf_dmri.fem.mesh_input`);
:func:`block_matrices` stacks them block-diagonally for callers that want one system.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from skfem import Basis, BilinearForm, MeshTet, MeshTri
from skfem.element import ElementTetP1, ElementTetP2, ElementTriP1, ElementTriP2
from skfem.helpers import dot, grad

from mf_dmri.fem.mesh_input import MeshPiece, element_measures, mesh_size

#: Default Lagrange order of a mesh eigenbasis: P2.  With the error bar of
#: ``signal_with_error`` (how a signal is known to be within 1e-3), P2 reaches 1e-3 first
#: on the sphere, cylinder and neuron meshes (3.6x to 20x: its discretisation bar needs a
#: cheap P1 solve of the same mesh, a P1 basis a P2 solve of a mesh fine enough for P1);
#: benchmarks/results/element_order.md.  Pass ``order=1`` for P1.
DEFAULT_ELEMENT_ORDER = 2

_ELEMENTS = {
    (2, 1): ElementTriP1,
    (2, 2): ElementTriP2,
    (3, 1): ElementTetP1,
    (3, 2): ElementTetP2,
}


@BilinearForm
def _stiffness_form(u, v, _):
    return dot(grad(u), grad(v))


@BilinearForm
def _mass_form(u, v, _):
    return u * v


def _moment_form(axis: int) -> BilinearForm:
    @BilinearForm
    def form(u, v, w):
        return w.x[axis] * u * v

    return form


@dataclass(frozen=True)
class FemMatrices:
    """Assembled matrices of one connected mesh piece.

    Args:
        stiffness: (n, n) CSR stiffness matrix K [m^(d-2)].
        mass: (n, n) CSR mass matrix M [m^d].
        moments: d CSR first-moment matrices Q_k [m^(d+1)].
        order: polynomial order of the Lagrange elements (1 or 2).
        mesh_size: largest element edge length h [m].
        volume: area/volume of the piece [m^d].
        label: the compartment label of the piece.
    """

    stiffness: sp.csr_matrix
    mass: sp.csr_matrix
    moments: tuple[sp.csr_matrix, ...]
    order: int
    mesh_size: float
    volume: float
    label: int = 0

    def __post_init__(self) -> None:
        n = self.stiffness.shape[0]
        if self.stiffness.shape != (n, n) or self.mass.shape != (n, n):
            raise ValueError("stiffness and mass must be square matrices of one size")
        if len(self.moments) not in (2, 3) or any(q.shape != (n, n) for q in self.moments):
            raise ValueError("moments must be 2 or 3 matrices of the stiffness' size")
        if self.order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {self.order}")
        if not (self.mesh_size > 0 and self.volume > 0):
            raise ValueError("mesh_size [m] and volume [m^d] must be positive")

    @property
    def num_dofs(self) -> int:
        return int(self.stiffness.shape[0])

    @property
    def dimension(self) -> int:
        return len(self.moments)

    @property
    def mass_jacobi_bound(self) -> float:
        """c with ``M >= c diag(M)`` for these Lagrange elements, whatever the mesh (see
        :func:`reference_jacobi_bound`)."""
        return reference_jacobi_bound(_ELEMENTS[(self.dimension, self.order)]())


def skfem_mesh(nodes: np.ndarray, elements: np.ndarray) -> MeshTri | MeshTet:
    """A scikit-fem mesh of checked arrays (nodes (N, d) [m], elements (E, d+1))."""
    mesh_type = MeshTri if nodes.shape[1] == 2 else MeshTet
    return mesh_type(np.ascontiguousarray(nodes.T), np.ascontiguousarray(elements.T))


def assemble_piece(piece: MeshPiece, order: int = DEFAULT_ELEMENT_ORDER) -> FemMatrices:
    """Assemble K, M and the Q_k of one connected piece with P``order`` Lagrange elements."""
    if order not in (1, 2):
        raise ValueError(f"order must be 1 (P1) or 2 (P2), got {order!r}")
    mesh = skfem_mesh(piece.nodes, piece.elements)
    element = _ELEMENTS[(piece.dimension, order)]()
    basis = Basis(mesh, element, intorder=2 * order + 1)
    moments = tuple(_moment_form(k).assemble(basis).tocsr() for k in range(piece.dimension))
    return FemMatrices(
        stiffness=_symmetrised(_stiffness_form.assemble(basis)),
        mass=_symmetrised(_mass_form.assemble(basis)),
        moments=tuple(_symmetrised(q) for q in moments),
        order=order,
        mesh_size=mesh_size(piece.nodes, piece.elements),
        volume=float(element_measures(piece.nodes, piece.elements).sum()),
        label=piece.label,
    )


def reference_jacobi_bound(element) -> float:
    """The smallest eigenvalue c of ``diag(M_ref)^-1 M_ref`` for the mass matrix of one
    reference element of the scikit-fem ``element`` (a Lagrange simplex).  Every affine
    element's mass matrix is its measure times M_ref, and the diagonal of a sum of element
    matrices is the sum of their diagonals, so ``M >= c diag(M)`` holds for the assembled
    mass matrix of any mesh of such elements, whatever their shape (P1: c = 1/2; P2
    tetrahedra: 1/4)."""
    dimension = element.dim
    nodes = np.vstack([np.zeros(dimension), np.eye(dimension)])
    mesh = skfem_mesh(nodes, np.arange(dimension + 1)[None, :])
    basis = Basis(mesh, element, intorder=2 * element.maxdeg + 1)
    matrix = _mass_form.assemble(basis).toarray()
    scale = 1.0 / np.sqrt(np.diag(matrix))
    return float(np.linalg.eigvalsh(matrix * np.outer(scale, scale))[0])


def _symmetrised(matrix: sp.spmatrix) -> sp.csr_matrix:
    """(A + A^T)/2 in CSR: removes the round-off asymmetry of the quadrature sums."""
    matrix = matrix.tocsr()
    return ((matrix + matrix.T) * 0.5).tocsr()


def block_matrices(pieces: list[FemMatrices]) -> FemMatrices:
    """One block-diagonal system of independent pieces (compartments never couple)."""
    if not pieces:
        raise ValueError("no mesh pieces to stack")
    dim = pieces[0].dimension
    return FemMatrices(
        stiffness=sp.block_diag([p.stiffness for p in pieces], format="csr"),
        mass=sp.block_diag([p.mass for p in pieces], format="csr"),
        moments=tuple(
            sp.block_diag([p.moments[k] for p in pieces], format="csr") for k in range(dim)
        ),
        order=pieces[0].order,
        mesh_size=max(p.mesh_size for p in pieces),
        volume=sum(p.volume for p in pieces),
        label=pieces[0].label,
    )
