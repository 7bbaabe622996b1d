"""The parametric tissue models of :mod:`mf_dmri.inverse.models`, batched over voxels.

``VoxelModel`` evaluates :class:`~mf_dmri.inverse.CylinderModel` (single radius, fixed
axis per voxel) or :class:`~mf_dmri.inverse.SphereModel` for V voxels at once, each with
its own parameter values and fibre axis, from interpolation tables of the restricted
signal (:mod:`mf_dmri.inverse.kernel_tables`): the same formula as the per-voxel models,
to the tables' checked error (default 1e-6 of the unweighted signal).  The hindered
compartments are closed forms: ball exp(-D b), zeppelin exp(-b (D_perp + (D_par - D_perp)
cos^2)) with cos the angle between the gradient and the axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mf_dmri._checks import DTYPE
from mf_dmri.inverse.kernel_tables import (
    TABLE_TOLERANCE,
    FrozenTable,
    MeasurementGroupGeometry,
    RestrictedTable,
    group_geometry,
    restricted_table,
)
from mf_dmri.inverse.models import CylinderModel, SphereModel
from mf_dmri.inverse.parameters import Parameter
from mf_dmri.inverse.protocol import as_piece_groups


@dataclass(frozen=True, eq=False)
class VoxelModel:
    """A tissue model for many voxels.

    Args:
        model: a ``CylinderModel`` (``radius_distribution='single'``, ``fit_axis=False``;
            the axis is per voxel) or a ``SphereModel``.
        parameters: the model's parameters (bounds, fixed values), ``model.parameters()``.
        groups: the protocol's measurement groups (one per timing), in data order.
        tables: one restricted-signal table per group.
    """

    model: CylinderModel | SphereModel
    parameters: tuple[Parameter, ...]
    groups: tuple[MeasurementGroupGeometry, ...]
    tables: tuple[RestrictedTable, ...]

    @classmethod
    def build(
        cls,
        model: CylinderModel | SphereModel,
        protocol,
        parameters: tuple[Parameter, ...],
        *,
        tolerance: float = TABLE_TOLERANCE,
    ) -> VoxelModel:
        """Tables for ``protocol`` (anything ``as_piece_groups`` accepts) over the radius
        and intra-cellular diffusivity bounds of ``parameters``."""
        if isinstance(model, CylinderModel) and (
            model.radius_distribution != "single" or model.fit_axis
        ):
            raise ValueError(
                "voxel-wise fitting supports single-radius cylinders with a given axis per "
                "voxel (radius_distribution='single', fit_axis=False)"
            )
        by_name = {p.name: p for p in parameters}
        shape = "disk" if isinstance(model, CylinderModel) else "ball"
        radius, diffusivity = by_name["radius"], by_name["intra_diffusivity"]
        ranges = {
            "radius_range": _range(radius),
            "diffusivity_range": _range(diffusivity),
            "unit_cutoff": model.unit_cutoff,
            "tolerance": tolerance,
        }
        groups = tuple(group_geometry(g) for g in as_piece_groups(protocol))
        tables = tuple(restricted_table(shape, g, **ranges) for g in groups)
        return cls(model, tuple(parameters), groups, tables)

    def frozen(self) -> VoxelModel:
        """This model with its tables expanded to first order about the points of the next
        call (:class:`~mf_dmri.inverse.kernel_tables.FrozenTable`): call it once at a
        parameter point, then differentiate it there cheaply."""
        return VoxelModel(
            self.model, self.parameters, self.groups, tuple(FrozenTable(t) for t in self.tables)
        )

    @property
    def num_measurements(self) -> int:
        return sum(int(g.amplitudes.numel()) for g in self.groups)

    @property
    def table_error(self) -> float:
        """Largest checked interpolation error of the tables [-]."""
        return max(t.table.checked_error for t in self.tables)

    def signals(self, values: dict[str, torch.Tensor], axes: torch.Tensor | None) -> torch.Tensor:
        """Signals (V, M) [data units] for parameter ``values`` (each (V,), SI) and unit
        fibre ``axes`` (V, 3) [-] (cylinders; None for spheres)."""
        parts = [self._group(values, axes, g, t) for g, t in zip(self.groups, self.tables)]
        return values["s0"][:, None] * torch.cat(parts, dim=1)

    def _group(self, values, axes, group: MeasurementGroupGeometry, table: RestrictedTable):
        radius, diffusivity = values["radius"][:, None], values["intra_diffusivity"][:, None]
        bvalues = group.bvalues[None, :]
        if isinstance(self.model, CylinderModel):
            cosine = axes @ group.directions.T  # (V, M)
            squared = cosine**2
            perpendicular = torch.sqrt(torch.clamp(1 - squared, min=0.0))
            amplitude = group.amplitudes[None, :] * perpendicular
        else:
            squared = torch.zeros(1, bvalues.shape[1], dtype=DTYPE)
            amplitude = group.amplitudes[None, :].expand(radius.shape[0], -1)
        transverse = table.signal(radius[:, 0], diffusivity[:, 0], amplitude)
        intra = transverse
        if isinstance(self.model, CylinderModel):
            intra = transverse * torch.exp(-diffusivity * bvalues * squared)
        extra = self.model.extra
        if extra == "none":
            return intra
        fraction = values["intra_fraction"][:, None]
        if extra == "ball":
            hindered = torch.exp(-values["extra_diffusivity"][:, None] * bvalues)
        else:
            parallel = values["extra_parallel_diffusivity"][:, None]
            perpendicular_d = values["extra_perpendicular_diffusivity"][:, None]
            hindered = torch.exp(
                -bvalues * (perpendicular_d + (parallel - perpendicular_d) * squared)
            )
        return fraction * intra + (1 - fraction) * hindered


def _range(parameter: Parameter) -> tuple[float, float]:
    if parameter.fixed:
        value = parameter.initial
        return value * (1 - 1e-6), value * (1 + 1e-6)
    return parameter.lower, parameter.upper
