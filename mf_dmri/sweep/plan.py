"""Expand a ``SweepSpec`` into geometry points, tissue points, measurements and chunks.

Row ``r`` of the parameter table is geometry point ``r // T`` with tissue point ``r % T``
(T tissue points).  Rows are stored in chunks of at most ``chunk_rows`` rows, never
spanning two geometries, so a chunk needs exactly one eigenbasis.

A coupled geometry (nested compartments with permeable membranes) bakes the tissue values
into its eigenproblem, so for it every tissue point is part of the geometry point: the
points are (shape parameters) x (tissue points), each one coupled eigen-solve and one row
(T = 1).  A sweep holds coupled geometries only or uncoupled ones only.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mf_dmri.sweep.acquisition import MeasurementTable, measurement_table
from mf_dmri.sweep.ranges import combine_axes
from mf_dmri.sweep.registry import GeometryRegistry
from mf_dmri.sweep.spec import COUPLING_PARAMETERS, SweepSpec


@dataclass(frozen=True)
class GeometryPoint:
    """One geometry: builder ``shape``, SI ``parameters``, fixed ``options``, ``file``, and
    for a coupled shape the SI ``tissue`` values of its eigenproblem (empty otherwise)."""

    index: int
    shape: str
    parameters: dict[str, float]
    options: dict[str, Any]
    file: str = ""
    tissue: dict[str, float] = field(default_factory=dict)

    def key(self) -> str:
        """A stable text key of the builder inputs (file contents are hashed by io)."""
        inputs = [self.shape, self.parameters, self.options, self.file]
        return json.dumps(
            inputs + [self.tissue] if self.tissue else inputs, sort_keys=True, default=str
        )

    def digest(self) -> str:
        """SHA-256 of ``key()`` (the eigenbasis cache key before file contents)."""
        return hashlib.sha256(self.key().encode()).hexdigest()


@dataclass(frozen=True)
class Chunk:
    """Rows ``row_start .. row_start + (tissue_stop - tissue_start)`` of one geometry."""

    index: int
    geometry: int
    tissue_start: int
    tissue_stop: int
    row_start: int

    @property
    def size(self) -> int:
        return self.tissue_stop - self.tissue_start


@dataclass(frozen=True)
class SweepPlan:
    """Everything a run needs, derived deterministically from the spec."""

    spec: SweepSpec
    geometries: tuple[GeometryPoint, ...]
    tissue: dict[str, np.ndarray]
    measurements: MeasurementTable
    chunks: tuple[Chunk, ...]

    @property
    def num_tissue(self) -> int:
        """Tissue points per geometry (1 in a coupled sweep: they are geometry points)."""
        return int(next(iter(self.tissue.values())).size) if self.tissue else 1

    @property
    def coupled(self) -> bool:
        """Whether the geometries are coupled (tissue values inside the geometry points)."""
        return not self.tissue

    @property
    def num_rows(self) -> int:
        return len(self.geometries) * self.num_tissue

    def parameter_table(self) -> dict[str, np.ndarray]:
        """One SI column per parameter, one entry per row (geometry parameters that a
        shape lacks are NaN)."""
        count_g, count_t = len(self.geometries), self.num_tissue
        geometry_index = np.repeat(np.arange(count_g), count_t)
        names = sorted({n for g in self.geometries for n in g.parameters})
        tissue_names = sorted({n for g in self.geometries for n in g.tissue})
        table: dict[str, np.ndarray] = {
            "row": np.arange(self.num_rows),
            "geometry_index": geometry_index,
            "shape": np.array([g.shape for g in self.geometries], dtype=object)[geometry_index],
            "file": np.array([g.file for g in self.geometries], dtype=object)[geometry_index],
        }
        for name in names:
            values = np.array([g.parameters.get(name, math.nan) for g in self.geometries])
            table[name] = values[geometry_index]
        for name in tissue_names:
            table[name] = np.array([g.tissue.get(name, math.nan) for g in self.geometries])
        for name, values in self.tissue.items():
            table[name] = np.tile(values, count_g)
        return table


class TissueKeyError(ValueError):
    """A tissue parameter is wrong for this sweep; ``key`` is its SI name
    (``"intra.surface_relaxivity"``), so a reader can name the key as the user wrote it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def check_tissue(spec: SweepSpec, registry: GeometryRegistry) -> tuple[dict, bool]:
    """The tissue columns of ``spec`` [SI] and whether its geometries are coupled, after
    checking the tissue values against the kind of geometry (raises ``TissueKeyError``)."""
    coupled = _coupled(spec, registry)
    tissue = combine_axes(dict(spec.tissue.parameters), spec.tissue.combine, spec.seed, "tissue")
    _check_tissue(tissue, coupled)
    return tissue, coupled


def build_plan(spec: SweepSpec, registry: GeometryRegistry) -> SweepPlan:
    """Expand ``spec`` (validating shapes and parameters against ``registry``)."""
    tissue, coupled = check_tissue(spec, registry)
    count_t = next(iter(tissue.values())).size
    points = [{k: float(v[t]) for k, v in tissue.items()} for t in range(count_t)]
    geometries: list[GeometryPoint] = []
    for family_index, family in enumerate(spec.geometries):
        builder = registry[family.shape]
        builder.check(set(family.parameters), set(family.options))
        if family.files and "file" not in builder.options:
            raise ValueError(
                f"geometry '{family.shape}' is not built from files: remove its files list "
                "or use a file-based shape"
            )
        if not family.files and "file" in builder.options:
            raise ValueError(f"geometry '{family.shape}' needs a files = [...] list")
        columns = combine_axes(
            dict(family.parameters), family.combine, spec.seed, f"geometry{family_index}"
        )
        count = next(iter(columns.values())).size if columns else 1
        for file in family.files or ("",):
            for i in range(count):
                parameters = {n: float(c[i]) for n, c in columns.items()}
                for values in points if coupled else ({},):
                    geometries.append(
                        GeometryPoint(
                            len(geometries),
                            family.shape,
                            parameters,
                            dict(family.options),
                            file,
                            values,
                        )
                    )
    if coupled:
        tissue, count_t = {}, 1
    chunks = []
    for g in range(len(geometries)):
        for start in range(0, count_t, spec.chunk_rows):
            stop = min(start + spec.chunk_rows, count_t)
            chunks.append(Chunk(len(chunks), g, start, stop, g * count_t + start))
    return SweepPlan(
        spec,
        tuple(geometries),
        tissue,
        measurement_table(spec.acquisitions, spec.plausibility),
        tuple(chunks),
    )


def _coupled(spec: SweepSpec, registry: GeometryRegistry) -> bool:
    """Whether the sweep's geometries are coupled (refusing a mix of both kinds)."""
    kinds = {family.shape: registry[family.shape].coupled for family in spec.geometries}
    if len(set(kinds.values())) > 1:
        coupled = sorted(k for k, v in kinds.items() if v)
        raise ValueError(
            f"the coupled shapes {coupled} (tissue values inside their eigenproblem) cannot "
            f"share a sweep with the uncoupled shapes "
            f"{sorted(k for k, v in kinds.items() if not v)}: run two sweeps"
        )
    return any(kinds.values())


def _check_tissue(tissue: dict[str, np.ndarray], coupled: bool) -> None:
    for key, values in tissue.items():
        name = key.rsplit(".", 1)[-1]
        if name in COUPLING_PARAMETERS and not coupled:
            raise TissueKeyError(
                key,
                f"{name} couples compartments, which only a coupled shape has (nested "
                "compartments with permeable membranes: sphere_in_sphere, cylinder_in_box, "
                "nested_mesh; "
                "docs/sweeps.md): use one, or remove the key",
            )
        if coupled and name.endswith("_fraction"):
            raise TissueKeyError(
                key,
                "the compartments of a coupled shape are weighted by their meshed volumes x "
                "spin density (the mesh fixes the fractions): remove the key, and change the "
                "geometry or spin_density instead",
            )
        if key != name and name == "permeability":
            raise TissueKeyError(
                key,
                "permeability is one value for every membrane of the geometry: give it in "
                "[tissue] itself, not per compartment",
            )
        if name in ("diffusivity", "t2") and bool((values <= 0).any()):
            raise TissueKeyError(key, f"tissue {key} must be positive, got {values.min():g}")
        if name in ("spin_density", *COUPLING_PARAMETERS) and bool((values < 0).any()):
            raise TissueKeyError(key, f"tissue {key} must be non-negative, got {values.min():g}")
        if name.endswith("_fraction") and bool(((values < 0) | (values > 1)).any()):
            low, high = values.min(), values.max()
            raise TissueKeyError(key, f"tissue {key} must lie in [0, 1], got {low:g}..{high:g}")


def tissue_value(tissue: dict[str, np.ndarray], compartment: str, name: str) -> np.ndarray | None:
    """Column of property ``name`` for ``compartment`` (its own, else the shared one)."""
    return tissue.get(f"{compartment}.{name}", tissue.get(name))
