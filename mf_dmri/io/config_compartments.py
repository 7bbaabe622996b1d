"""``[[compartment]]`` tables (and the ``[mesh]`` of a permeable system) of a simulation
config -> checked, SI compartment descriptions.

A compartment has a ``name``, a ``shape`` (``cylinder``, ``sphere``, ``slab``, ``free``
or ``mesh``), its geometry keys, its tissue keys and at most one of ``volume_fraction``
or ``signal_fraction``.  A ``mesh`` compartment names its surface file (``path``,
``unit``: a length unit name or a number of metres per file unit, e.g. 8e-9 for navis'
voxels) and may set ``element_order`` (1 or 2; default 2, P2 Lagrange elements).
Every numeric key may be a list or range table (see docs/sweeps.md): the config then
describes a phantom, one voxel per combination.

With a ``[mesh]`` section (``path``, ``unit``, ``length_scale_um``, ``permeability_*``)
the compartments are the nested regions of that mesh, outermost first; they take tissue
keys only (``diffusivity``, ``t2``, ``spin_density``, ``surface_relaxivity``), their
volumes come from the mesh and the membranes between them are permeable.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mf_dmri.io.plausible_keys import axis_extremes, check_key, check_sign
from mf_dmri.io.vocabulary import ConfigError, file_length_unit, split_key
from mf_dmri.plausibility import Plausibility
from mf_dmri.sweep.ranges import Axis, Values

TISSUE = {
    "diffusivity": "diffusivity",
    "t2": "time",
    "spin_density": "none",
    "surface_relaxivity": "permeability",
}
FRACTIONS = {"volume_fraction": "none", "signal_fraction": "none"}
CUTOFF = {"length_scale": "length", "max_eigenvalue": "eigenvalue"}
#: geometry quantities per shape; the required ones first in REQUIRED
SHAPES = {
    "cylinder": {"radius": "length", "length": "length", **CUTOFF},
    "sphere": {"radius": "length", **CUTOFF},
    "slab": {"width": "length", **CUTOFF},
    "free": {},
    "mesh": dict(CUTOFF),
}
REQUIRED = {"cylinder": ("radius",), "sphere": ("radius",), "slab": ("width",)}
OPTIONS = {"cylinder": ("axis",), "slab": ("axis",), "mesh": ("path", "unit", "element_order")}
#: Lagrange orders a mesh compartment accepts (``element_order``; default P2, see
#: mf_dmri.fem.DEFAULT_ELEMENT_ORDER).
ELEMENT_ORDERS = (1, 2)
MESH_SYSTEM = {"permeability": "permeability", **CUTOFF}


@dataclass(frozen=True)
class CompartmentConfig:
    """One compartment: ``axes`` of SI values by Python name (one value each unless the
    config is a phantom), the key each came from (``written``) and fixed ``options``."""

    name: str
    shape: str
    axes: dict[str, Axis]
    written: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)

    def where(self) -> str:
        return f"[[compartment]] {self.name!r}"

    def key(self, name: str) -> str:
        """The key as the user wrote it (for messages)."""
        return f"{self.where()} {self.written.get(name, name)}"


@dataclass(frozen=True)
class MeshSystemConfig:
    """A labelled mesh of nested compartments with permeable membranes."""

    path: Path
    unit: float
    axes: dict[str, Axis]
    written: dict[str, str]


def direction(value: Any, where: str) -> tuple[float, float, float]:
    """A TOML direction [x, y, z]: three finite numbers, not all zero (ConfigError)."""
    numbers = isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    )
    if not numbers or len(value) != 3 or not all(math.isfinite(v) for v in value):
        raise ConfigError(
            f"{where} must be a direction [x, y, z] of three finite numbers, got {value!r}",
            ("axis",),
            where,
        )
    if not any(value):
        raise ConfigError(
            f"{where} is the zero vector; give a direction such as [0, 0, 1]", ("axis",), where
        )
    return tuple(float(v) for v in value)


def parse_axis_value(value: Any, factor: float, where: str) -> Axis:
    from mf_dmri.io.sweep_toml import parse_axis

    try:
        return parse_axis(value, factor, where)
    except ValueError as exc:
        raise ConfigError(str(exc), (where,), where) from exc


def _axes(
    section: dict[str, Any],
    quantities: dict[str, str],
    where: str,
    plausibility: Plausibility | None = None,
) -> tuple[dict[str, Axis], dict[str, str]]:
    axes, written = {}, {}
    for key, value in section.items():
        resolved = split_key(key, quantities, where)
        if resolved.name in axes:
            raise ConfigError(f"{where}: {resolved.name} is given twice", (key,), where)
        axis = parse_axis_value(value, resolved.factor, f"{where} {key}")
        check_sign(resolved, key, axis_extremes(axis), where)
        check_key(
            resolved.name,
            key,
            resolved.unit,
            resolved.factor,
            axis_extremes(axis),
            where,
            plausibility,
        )
        axes[resolved.name] = axis
        written[resolved.name] = key
    return axes, written


def _unit(value: Any, where: str) -> float:
    try:
        return file_length_unit(value)
    except ValueError as exc:
        raise ConfigError(f"{where} {exc}", ("unit",), where) from None


def _element_order(value: Any, where: str) -> int:
    if isinstance(value, bool) or value not in ELEMENT_ORDERS:
        raise ConfigError(
            f"{where} element_order must be 1 (P1) or 2 (P2 Lagrange elements; the default), "
            f"got {value!r}",
            ("element_order",),
            where,
        )
    return int(value)


def parse_compartment(
    section: dict[str, Any],
    index: int,
    base: Path,
    system: bool,
    plausibility: Plausibility | None = None,
):
    """One ``[[compartment]]`` table (``system``: a region of the ``[mesh]``)."""
    section = dict(section)
    name = section.pop("name", f"compartment{index + 1}")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ConfigError(
            f"[[compartment]] {index + 1}: name must be a word of letters, digits, _ and - "
            f"(it names output columns), got {name!r}",
            ("name",),
            f"[[compartment]] {index + 1}",
        )
    where = f"[[compartment]] {name!r}"
    shape = section.pop("shape", None)
    if system:
        if shape is not None:
            raise ConfigError(
                f"{where}: the compartments of a [mesh] are its regions; remove shape",
                ("shape",),
                where,
            )
        quantities, options = dict(TISSUE), {}
    else:
        if shape not in SHAPES:
            raise ConfigError(
                f"{where} shape must be one of {', '.join(SHAPES)}, got {shape!r}",
                ("shape",),
                where,
            )
        options = {k: section.pop(k) for k in OPTIONS.get(shape, ()) if k in section}
        quantities = {**SHAPES[shape], **TISSUE, **FRACTIONS}
    axes, written = _axes(section, quantities, where, plausibility)
    if "diffusivity" not in axes:
        raise ConfigError(f"{where} needs diffusivity_um2_per_ms", ("diffusivity",), where)
    for required in REQUIRED.get(shape, ()):
        if required not in axes:
            raise ConfigError(f"{where} (shape {shape}) needs {required}_um", (required,), where)
    if "volume_fraction" in axes and "signal_fraction" in axes:
        raise ConfigError(
            f"{where}: give volume_fraction or signal_fraction, not both",
            ("signal_fraction",),
            where,
        )
    if shape == "mesh":
        if "path" not in options or "unit" not in options:
            raise ConfigError(f"{where} shape = 'mesh' needs path and unit", ("path",), where)
        options["path"] = base / options["path"]
        options["unit"] = _unit(options["unit"], where)
        if "element_order" in options:
            options["element_order"] = _element_order(options["element_order"], where)
    if shape in ("cylinder", "slab"):
        axis = options.get("axis", (0.0, 0.0, 1.0) if shape == "cylinder" else (1.0, 0.0, 0.0))
        options["axis"] = direction(axis, f"{where} axis")
    return CompartmentConfig(name, shape or "region", axes, written, options)


def parse_mesh_system(
    section: dict[str, Any], base: Path, plausibility: Plausibility | None = None
) -> MeshSystemConfig:
    """The ``[mesh]`` table; ``plausibility``: the ``[checks]`` override."""
    section = dict(section)
    where = "[mesh]"
    if "path" not in section or "unit" not in section:
        raise ConfigError(f"{where} needs path and unit", ("path",), where)
    path = base / section.pop("path")
    unit = _unit(section.pop("unit"), where)
    axes, written = _axes(section, MESH_SYSTEM, where, plausibility)
    for name, axis in axes.items():
        if not isinstance(axis, Values) or len(axis.values) != 1:
            raise ConfigError(f"{where} {written[name]} takes one value", (written[name],), where)
    return MeshSystemConfig(path, unit, axes, written)


def check_fractions(compartments: tuple[CompartmentConfig, ...]) -> str | None:
    """'volume_fraction', 'signal_fraction' or None (volume weighting); at most one
    compartment may omit its fraction (it gets the rest)."""
    kinds = {k for c in compartments for k in FRACTIONS if k in c.axes}
    if len(kinds) > 1:
        raise ConfigError(
            "[[compartment]]: use volume_fraction everywhere or signal_fraction everywhere, "
            "not both",
            tuple(kinds),
            "[[compartment]]",
        )
    if not kinds:
        return None
    (kind,) = kinds
    missing = [c.name for c in compartments if kind not in c.axes]
    if len(missing) > 1:
        raise ConfigError(
            f"[[compartment]]: {kind} is missing for {missing}; give it to all compartments, "
            "or to all but one (which gets the rest)",
            (kind,),
            "[[compartment]]",
        )
    return kind
