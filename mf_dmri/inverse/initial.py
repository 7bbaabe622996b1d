"""Starting values from a diffusion-tensor fit: fibre axis and mean diffusivity.

ln S = ln S0 - B : D is linear in (ln S0, D_xx, D_yy, D_zz, D_xy, D_xz, D_yz) (Basser et al.
1994, Biophys. J. 66, 259); it is solved by least squares on the measurements with
b <= ``max_bvalue`` (where the Gaussian approximation holds).  The principal eigenvector of
D estimates the axis of a fibre bundle.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mf_dmri._checks import DTYPE
from mf_dmri.inverse.protocol import as_piece_groups


@dataclass(frozen=True)
class TensorFit:
    """Diffusion tensor estimate.

    Args:
        s0: signal without diffusion weighting [data units].
        tensor: (3, 3) diffusion tensor [m^2/s].
        principal_axis: (3,) unit eigenvector of the largest eigenvalue [-].
        mean_diffusivity: trace / 3 [m^2/s].
    """

    s0: float
    tensor: torch.Tensor
    principal_axis: torch.Tensor
    mean_diffusivity: float


def fit_tensor(protocol, data: torch.Tensor, max_bvalue: float = 1.5e9) -> TensorFit:
    """Log-linear diffusion tensor fit.

    Args:
        protocol: the acquisition (anything ``as_piece_groups`` accepts).
        data: (M,) signals [data units], positive where used.
        max_bvalue: use measurements with b <= this [s/m^2] (at least 7 needed, with
            non-coplanar directions).
    """
    btensors = torch.cat([g.btensors() for g in as_piece_groups(protocol)]).detach().to(DTYPE)
    data = torch.as_tensor(data, dtype=DTYPE)
    if data.shape != (btensors.shape[0],):
        raise ValueError(
            f"data must have one value per measurement ({btensors.shape[0]}), "
            f"got shape {tuple(data.shape)}"
        )
    bvalues = btensors.diagonal(dim1=-2, dim2=-1).sum(-1)
    use = (bvalues <= max_bvalue) & (data > 0)
    if int(use.sum()) < 7:
        raise ValueError(
            f"a tensor fit needs at least 7 positive measurements with b <= {max_bvalue:g} "
            "s/m^2; raise max_bvalue or give the fibre axis explicitly"
        )
    design = _design(btensors[use])
    if int(torch.linalg.matrix_rank(design)) < 7:
        raise ValueError(
            "the measurements used for the tensor fit do not determine a tensor (too few "
            "distinct directions); give the fibre axis explicitly"
        )
    solution = torch.linalg.lstsq(design, torch.log(data[use])[:, None]).solution[:, 0]
    tensor = _tensor(solution[None, 1:])[0]
    _, vectors = torch.linalg.eigh(tensor)
    return TensorFit(
        s0=float(torch.exp(solution[0])),
        tensor=tensor,
        principal_axis=vectors[:, -1],
        mean_diffusivity=float(tensor.trace() / 3),
    )


def _design(btensors: torch.Tensor) -> torch.Tensor:
    """Rows (1, -Bxx, -Byy, -Bzz, -2Bxy, -2Bxz, -2Byz) of the log-linear tensor model."""
    b = btensors
    columns = [torch.ones(b.shape[0], dtype=DTYPE), -b[:, 0, 0], -b[:, 1, 1], -b[:, 2, 2]]
    columns += [-2 * b[:, 0, 1], -2 * b[:, 0, 2], -2 * b[:, 1, 2]]
    return torch.stack(columns, dim=1)


def _tensor(elements: torch.Tensor) -> torch.Tensor:
    """(V, 3, 3) tensors from (V, 6) elements xx, yy, zz, xy, xz, yz."""
    xx, yy, zz, xy, xz, yz = elements.unbind(1)
    rows = [
        torch.stack([xx, xy, xz], 1),
        torch.stack([xy, yy, yz], 1),
        torch.stack([xz, yz, zz], 1),
    ]
    return torch.stack(rows, dim=1)


def tensor_axes(protocol, data: torch.Tensor, max_bvalue: float = 1.5e9) -> torch.Tensor:
    """Principal axes (V, 3) [-] of log-linear tensor fits to every voxel's data (V, M),
    using the measurements with b <= ``max_bvalue`` [s/m^2] and a positive signal."""
    btensors = torch.cat([g.btensors() for g in as_piece_groups(protocol)]).detach().to(DTYPE)
    data = torch.as_tensor(data, dtype=DTYPE)
    if data.ndim != 2 or data.shape[1] != btensors.shape[0]:
        raise ValueError(f"data must be (voxels, {btensors.shape[0]}), got {tuple(data.shape)}")
    bvalues = btensors.diagonal(dim1=-2, dim2=-1).sum(-1)
    weights = ((bvalues <= max_bvalue)[None, :] & (data > 0)).to(DTYPE)
    design = _design(btensors)
    if int(torch.linalg.matrix_rank(design[bvalues <= max_bvalue])) < 7:
        raise ValueError(
            f"the measurements with b <= {max_bvalue:g} s/m^2 do not determine a tensor (too "
            "few distinct directions); give the fibre axis explicitly"
        )
    logs = torch.log(torch.where(data > 0, data, 1.0))
    normal = torch.einsum("vm,mi,mj->vij", weights, design, design)
    rhs = torch.einsum("vm,mi,vm->vi", weights, design, logs)
    normal = normal + 1e-12 * normal.diagonal(dim1=1, dim2=2).amax(1)[:, None, None] * torch.eye(7)
    solution = torch.linalg.solve(normal, rhs[..., None])[..., 0]
    _, vectors = torch.linalg.eigh(_tensor(solution[:, 1:]))
    return vectors[:, :, -1]
