"""P1 finite-element matrices as differentiable functions of the node coordinates.

For linear simplices (triangles in 2-D, tetrahedra in 3-D) every element matrix has a
closed form in the element volume ``|T|`` and the gradients of the barycentric coordinates
``lambda_a`` (constant on the element):

* stiffness ``K_ab = |T| grad(lambda_a) . grad(lambda_b)``;
* mass ``M_ab = |T| (1 + delta_ab) / ((d + 1)(d + 2))``;
* first moments ``(Q_k)_ab = integral of x_k lambda_a lambda_b``, from the exact simplex
  rule ``integral of lambda_a lambda_b lambda_c = d! |T| (1 + delta_ab + delta_bc +
  delta_ac + 2 delta_abc) / (d + 3)!`` with ``x_k = sum_c x_k^c lambda_c``.

Everything is vectorised over elements in torch float64, so the element matrices carry
autograd history to the nodes.  The global matrices are the unassembled COO sum of the
element matrices: entry ``(elements[e, a], elements[e, b])`` receives ``values[e, a, b]``
(duplicates add up), which is the pattern :mod:`mf_dmri.fem.eigen_backward` consumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from mf_dmri._checks import DTYPE


@dataclass(frozen=True)
class P1Matrices:
    """Element matrices of one P1 mesh (values carry autograd history to the nodes).

    Args:
        stiffness: (E, n, n) element stiffness matrices [m^(d-2)], n = d + 1.
        mass: (E, n, n) element mass matrices [m^d].
        moments: (d, E, n, n) element first-moment matrices [m^(d+1)].
        element_volumes: (E,) element lengths/areas/volumes [m^d].
        elements: (E, n) int64 node indices of each simplex.
        num_nodes: number of mesh nodes N.
    """

    stiffness: torch.Tensor
    mass: torch.Tensor
    moments: torch.Tensor
    element_volumes: torch.Tensor
    elements: torch.Tensor
    num_nodes: int

    def __post_init__(self) -> None:
        count, n = self.elements.shape
        for name in ("stiffness", "mass"):
            if getattr(self, name).shape != (count, n, n):
                raise ValueError(f"{name} must have shape ({count}, {n}, {n})")
        if self.moments.shape != (n - 1, count, n, n):
            raise ValueError(f"moments must have shape ({n - 1}, {count}, {n}, {n})")

    @property
    def dimension(self) -> int:
        """Spatial dimension d of the mesh."""
        return int(self.elements.shape[1] - 1)

    def pattern(self) -> tuple[np.ndarray, np.ndarray]:
        """COO (rows, cols) of the flattened element values, each of length E * n * n."""
        return coo_pattern(self.elements)

    def volume(self) -> torch.Tensor:
        """Total length/area/volume of the mesh [m^d] (differentiable)."""
        return self.element_volumes.sum()

    def to_scipy(self, values: torch.Tensor) -> sp.csr_matrix:
        """Assembled (N, N) scipy CSR matrix of element values (E, n, n) (no autograd)."""
        rows, cols = self.pattern()
        data = values.detach().cpu().numpy().reshape(-1)
        return sp.csr_matrix((data, (rows, cols)), shape=(self.num_nodes, self.num_nodes))

    def to_torch_sparse(self, values: torch.Tensor) -> torch.Tensor:
        """Assembled (N, N) coalesced torch sparse COO matrix (differentiable)."""
        rows, cols = self.pattern()
        index = torch.as_tensor(np.stack([rows, cols]), device=values.device)
        shape = (self.num_nodes, self.num_nodes)
        sparse = torch.sparse_coo_tensor(index, values.reshape(-1), shape, check_invariants=True)
        return sparse.coalesce()


def coo_pattern(elements: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) int64 arrays of the unassembled element-matrix entries, row-major
    within each element: entry ``e * n * n + a * n + b`` is ``(elements[e, a],
    elements[e, b])``."""
    el = np.asarray(elements.cpu() if isinstance(elements, torch.Tensor) else elements)
    n = el.shape[1]
    rows = np.repeat(el, n, axis=1).reshape(-1)
    cols = np.tile(el, (1, n)).reshape(-1)
    return rows.astype(np.int64), cols.astype(np.int64)


def check_mesh_arrays(nodes: torch.Tensor, elements: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Validate (N, d) nodes [m] and (E, d + 1) simplices; return elements as int64 tensor."""
    if not isinstance(nodes, torch.Tensor) or nodes.dtype != DTYPE:
        raise TypeError(
            "nodes must be a float64 torch tensor (N, d) [m]; use "
            "torch.as_tensor(nodes, dtype=torch.float64)"
        )
    if nodes.ndim != 2 or nodes.shape[1] not in (2, 3):
        raise ValueError(f"nodes must have shape (N, 2) or (N, 3) [m], got {tuple(nodes.shape)}")
    if not bool(torch.isfinite(nodes.detach()).all()):
        raise ValueError("nodes contain NaN or infinite coordinates; pass finite positions [m]")
    el = torch.as_tensor(
        np.asarray(elements.cpu() if isinstance(elements, torch.Tensor) else elements),
        dtype=torch.long,
        device=nodes.device,
    )
    dim = nodes.shape[1]
    if el.ndim != 2 or el.shape[1] != dim + 1:
        raise ValueError(
            f"elements must have shape (E, {dim + 1}) for {dim}-D nodes, got {tuple(el.shape)}"
        )
    if el.numel() == 0 or int(el.min()) < 0 or int(el.max()) >= nodes.shape[0]:
        raise ValueError("elements must be non-empty and index nodes in 0..N-1")
    return el


def element_orientation(
    nodes: torch.Tensor | np.ndarray, elements: torch.Tensor | np.ndarray
) -> np.ndarray:
    """Sign (+1/-1, int8) of det J of every element: pass it as ``orientation`` to later
    assemblies of the displaced mesh to detect elements inverted by the displacement."""
    x = np.asarray(nodes.detach().cpu() if isinstance(nodes, torch.Tensor) else nodes)
    el = np.asarray(elements.cpu() if isinstance(elements, torch.Tensor) else elements)
    jac = (x[el[:, 1:]] - x[el[:, :1]]).transpose(0, 2, 1)
    return np.sign(np.linalg.det(jac)).astype(np.int8)


def element_geometry(
    nodes: torch.Tensor, elements: torch.Tensor, orientation: np.ndarray | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Element volumes (E,) [m^d] and barycentric gradients (E, d + 1, d) [1/m].

    Raises if an element is degenerate, or (when the reference ``orientation`` (E,) of
    +-1 is given) if a node displacement inverted it: |det J| would silently fold the
    mesh."""
    vertices = nodes[elements]  # (E, n, d)
    edges = vertices[:, 1:, :] - vertices[:, :1, :]  # (E, d, d): rows are edge vectors
    cofactors = _cofactor_rows(edges)  # row a: det(J) * grad(lambda_{a+1})
    det = (edges[:, 0, :] * cofactors[:, 0, :]).sum(-1)
    sign = torch.sign(det.detach()).cpu().numpy()
    bad = sign == 0
    if orientation is not None:
        bad |= sign != np.asarray(orientation)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} element(s) (first: {int(np.flatnonzero(bad)[0])}) are "
            "degenerate or inverted relative to the reference orientation; the node "
            "displacement folded the mesh: take a smaller step or regularise the geometry"
        )
    dim = nodes.shape[1]
    volumes = det.abs() / math.factorial(dim)
    inv = cofactors / det[:, None, None]  # rows: grad of lambda_1..lambda_d
    grads = torch.cat([-inv.sum(dim=1, keepdim=True), inv], dim=1)  # (E, n, d)
    return volumes, grads


def _cofactor_rows(edges: torch.Tensor) -> torch.Tensor:
    """Rows ``c_a`` with ``c_a . e_b = det * delta_ab`` for edge rows ``e_b`` (E, d, d):
    cross products in 3-D, 90-degree rotations in 2-D (more accurate than a batched
    inverse on thin elements)."""
    if edges.shape[-1] == 3:
        e1, e2, e3 = edges[:, 0], edges[:, 1], edges[:, 2]
        return torch.stack(
            [torch.linalg.cross(e2, e3), torch.linalg.cross(e3, e1), torch.linalg.cross(e1, e2)],
            dim=1,
        )
    e1, e2 = edges[:, 0], edges[:, 1]
    return torch.stack(
        [torch.stack([e2[:, 1], -e2[:, 0]], -1), torch.stack([-e1[:, 1], e1[:, 0]], -1)], dim=1
    )


def assemble_p1(
    nodes: torch.Tensor, elements: torch.Tensor | np.ndarray, orientation: np.ndarray | None = None
) -> P1Matrices:
    """Differentiable P1 stiffness, mass and first-moment element matrices.

    Args:
        nodes: (N, d) node coordinates [m], float64 (d = 2 triangles, 3 tetrahedra).
        elements: (E, d + 1) node indices of each simplex.
        orientation: optional (E,) reference signs of det J (see
            :func:`element_orientation`); an element whose sign changed raises.

    Returns:
        :class:`P1Matrices` whose tensors carry autograd history to ``nodes``.
    """
    el = check_mesh_arrays(nodes, elements)
    dim = nodes.shape[1]
    n = dim + 1
    volumes, grads = element_geometry(nodes, el, orientation)
    stiffness = volumes[:, None, None] * grads @ grads.transpose(1, 2)
    eye = torch.eye(n, dtype=DTYPE, device=nodes.device)
    mass = volumes[:, None, None] * (1.0 + eye) / ((dim + 1) * (dim + 2))
    coords = nodes[el].permute(2, 0, 1)  # (d, E, n): x_k at each element vertex
    total = coords.sum(-1)[..., None, None]  # (d, E, 1, 1)
    moment_shape = (
        (1.0 + eye) * total
        + coords[..., :, None]
        + coords[..., None, :]
        + 2.0 * eye * coords[..., :, None]
    )
    factor = math.factorial(dim) / math.factorial(dim + 3)
    moments = factor * volumes[None, :, None, None] * moment_shape
    return P1Matrices(
        stiffness=stiffness,
        mass=mass,
        moments=moments,
        element_volumes=volumes,
        elements=el,
        num_nodes=int(nodes.shape[0]),
    )
