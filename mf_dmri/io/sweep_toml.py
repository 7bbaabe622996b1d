"""Read a sweep description from TOML (units explicit in every key) into a ``SweepSpec``.

Every dimensional key carries its unit as a suffix, e.g. ``radius_um``, ``t2_ms``,
``diffusivity_um2_per_ms``, ``b_s_per_mm2``; values are converted to SI here and nowhere
else.  A value is a number, a list of numbers, or a table: ``{grid = [a, b], num = n}``,
``{log_grid = [a, b], num = n}``, ``{uniform = [a, b], num = n}`` or
``{log_uniform = [a, b], num = n}`` (random, seeded by the top-level ``seed``).
See docs/sweeps.md for the full schema and examples/sweep_*.toml.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from mf_dmri.io.config_compartments import direction
from mf_dmri.io.plausible_keys import axis_extremes, check_key, check_sign, parse_checks
from mf_dmri.io.vocabulary import ConfigError, file_length_unit, split_key
from mf_dmri.plausibility import Plausibility
from mf_dmri.sequences import electrostatic_directions
from mf_dmri.sweep.acquisition import hemisphere_directions
from mf_dmri.sweep.plan import TissueKeyError, check_tissue
from mf_dmri.sweep.ranges import Axis, Grid, Random, Values
from mf_dmri.sweep.registry import DEFAULT_REGISTRY, GeometryBuilder, GeometryRegistry
from mf_dmri.sweep.spec import (
    TISSUE_PARAMETERS,
    AcquisitionBlock,
    GeometrySpec,
    SweepSpec,
    TissueSpec,
)

_TOP_KEYS = {
    "name",
    "seed",
    "chunk_rows",
    "normalize",
    "checks",
    "geometry",
    "tissue",
    "acquisition",
}
_AXIS_FORMS = {
    "grid": (Grid, False),
    "log_grid": (Grid, True),
    "uniform": (Random, False),
    "log_uniform": (Random, True),
}
_ACQUISITION_PARAMETERS = {
    "pulse_duration": "time",
    "pulse_separation": "time",
    "b": "bvalue",
    "num_periods": "none",
}


def _check_finite(values, where: str) -> None:
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{where}: values must be finite numbers, got {bad[:3]}")


def parse_axis(value: Any, factor: float, where: str) -> Axis:
    """A TOML value (number, list or range table) as an SI axis."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected numbers, got a boolean")
    if isinstance(value, (int, float)):
        _check_finite([value], where)
        return Values((value * factor,))
    if isinstance(value, list):
        if not value:
            raise ValueError(f"{where}: empty list; give at least one value")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{where}: a list of values must hold numbers only")
        _check_finite(value, where)
        return Values(tuple(v * factor for v in value))
    if isinstance(value, dict):
        forms = set(value) & set(_AXIS_FORMS)
        unknown = set(value) - set(_AXIS_FORMS) - {"num"}
        if len(forms) != 1 or unknown or "num" not in value:
            raise ValueError(
                f"{where}: a range table needs exactly one of {sorted(_AXIS_FORMS)} and 'num', "
                f"e.g. {{grid = [1.0, 5.0], num = 5}}; got keys {sorted(value)}"
            )
        form = forms.pop()
        ends = value[form]
        if not (isinstance(ends, list) and len(ends) == 2):
            raise ValueError(f"{where}: {form} needs two ends [low, high]")
        cls, log = _AXIS_FORMS[form]
        try:
            return cls(ends[0] * factor, ends[1] * factor, value["num"], log=log)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: {exc}") from exc
    raise ValueError(f"{where}: expected a number, a list or a range table, got {value!r}")


def _axes(
    section: dict,
    quantities: dict[str, str],
    where: str,
    plausibility: Plausibility,
    written: dict | None = None,
) -> dict[str, Axis]:
    """SI axes of ``section``; ``written`` (if given) receives name -> key as written."""
    axes: dict[str, Axis] = {}
    for key, value in section.items():
        resolved = split_key(key, quantities, where)
        name, factor = resolved.name, resolved.factor
        if name in axes:
            raise ValueError(f"{where}: {name} is given twice (with different units?)")
        axes[name] = parse_axis(value, factor, f"{where}.{key}")
        check_sign(resolved, key, axis_extremes(axes[name]), where)
        check_key(name, key, resolved.unit, factor, axis_extremes(axes[name]), where, plausibility)
        if written is not None:
            written[name] = f"{where} {key}"
    return axes


def _geometry(
    section: dict, registry: GeometryRegistry, base: Path, index: int, plausibility: Plausibility
) -> GeometrySpec:
    where = f"[[geometry]] #{index + 1}"
    section = dict(section)
    if "shape" not in section:
        raise ValueError(f"{where} needs a shape; registered: {registry.names()}")
    shape = section.pop("shape")
    builder = registry[shape]
    combine = section.pop("combine", "product")
    files = section.pop("files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ValueError(f"{where}: files must be a list of paths")
    options = {k: section.pop(k) for k in list(section) if k in builder.options}
    if "axis" in options:
        direction(options["axis"], f"{where} axis")  # refused here, not at the solve
    axes = _axes(section, dict(builder.parameters), f"{where} (shape {shape})", plausibility)
    resolved = tuple(str((base / f).resolve()) for f in files)
    for f in resolved:
        if not Path(f).is_file():
            raise FileNotFoundError(f"{where}: geometry file {f} does not exist")
    return GeometrySpec(shape, axes, options, resolved, combine)


def _tissue(section: dict, written: dict[str, str], plausibility: Plausibility) -> TissueSpec:
    """The [tissue] axes; ``written`` receives SI name -> key as written."""
    section = dict(section)
    combine = section.pop("combine", "product")
    axes: dict[str, Axis] = {}
    for key in [k for k, v in section.items() if isinstance(v, dict) and not _is_range(v)]:
        own: dict[str, str] = {}
        where = f"[tissue.{key}]"
        tissue = _axes(section.pop(key), TISSUE_PARAMETERS, where, plausibility, own)
        for name, axis in tissue.items():
            axes[f"{key}.{name}"] = axis
        written.update({f"{key}.{name}": text for name, text in own.items()})
    axes.update(_axes(section, TISSUE_PARAMETERS, "[tissue]", plausibility, written))
    return TissueSpec(axes, combine)


def _is_range(value: dict) -> bool:
    return bool(set(value) & (set(_AXIS_FORMS) | {"num"}))


def parse_directions(value: Any, where: str) -> np.ndarray:
    """A count or ``{fibonacci = n}`` (Fibonacci hemisphere, instant), ``{electrostatic =
    n}`` (electrostatic repulsion, Jones et al. 1999; seconds to optimise) or a list of
    [x, y, z]."""
    if isinstance(value, dict) and len(value) == 1 and set(value) <= {"fibonacci", "electrostatic"}:
        ((scheme, count),) = value.items()
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(
                f"{where}: directions {{{scheme} = ...}} needs a positive whole count "
                f"(e.g. 30), got {count!r}"
            )
        if scheme == "fibonacci":
            return hemisphere_directions(count)
        value = count
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return electrostatic_directions(value).numpy()
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return np.asarray(value, dtype=float)
    raise ValueError(
        f"{where}: directions must be a positive whole count (e.g. 30), {{fibonacci = 30}}, "
        f"{{electrostatic = 30}}, or a list of [x, y, z]; got {value!r}"
    )


def _acquisition(section: dict, index: int, plausibility: Plausibility) -> AcquisitionBlock:
    where = f"[[acquisition]] #{index + 1}"
    section = dict(section)
    sequence = section.pop("sequence", None)
    if sequence is None:
        raise ValueError(f"{where} needs sequence = 'pgse' or 'ogse'")
    directions = parse_directions(section.pop("directions", [[1.0, 0.0, 0.0]]), where)
    combine = section.pop("timings_combine", "product")
    kind = section.pop("kind", "cos")
    values = {}
    for key, value in section.items():
        resolved = split_key(key, _ACQUISITION_PARAMETERS, where)
        name, factor = resolved.name, resolved.factor
        axis = parse_axis(value, factor, f"{where}.{key}")
        if isinstance(axis, Random):
            raise ValueError(f"{where}.{key}: acquisitions take explicit lists or grids of values")
        values[name] = tuple(float(v) for v in axis.sample(0, key))
        check_sign(resolved, key, values[name], where)
        check_key(name, key, resolved.unit, factor, values[name], where, plausibility)
    for name in ("pulse_duration", "pulse_separation", "b"):
        if name not in values:
            raise ValueError(f"{where} needs {name} (with its unit, e.g. {name}_ms)")
    return AcquisitionBlock(
        sequence,
        values["pulse_duration"],
        values["pulse_separation"],
        values["b"],
        tuple(map(tuple, directions)),
        _periods(values.get("num_periods", (1.0,)), where),
        kind,
        combine,
    )


def _periods(values: tuple[float, ...], where: str) -> tuple[int, ...]:
    if not all(float(v).is_integer() for v in values):
        raise ValueError(f"{where}: num_periods must be whole numbers, got {list(values)}")
    return tuple(int(v) for v in values)


def spec_from_toml(
    text: str,
    *,
    base_dir: str | Path = ".",
    registry: GeometryRegistry | None = None,
    allow: Iterable[str] = (),
) -> SweepSpec:
    """Parse sweep TOML ``text``; relative geometry files are resolved from ``base_dir``;
    shapes are looked up in ``registry`` (None: ``default_registry()``).  The ``[checks]``
    table (``allow = ["length", ...]``, ``enabled = false``) plus the quantities ``allow``
    (``mf-dmri sweep --allow``) is the override of the range checks
    (:mod:`mf_dmri.plausibility`), kept as ``SweepSpec.plausibility`` for the engine."""
    registry = default_registry() if registry is None else registry
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"the sweep file is not valid TOML: {exc}") from exc
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ValueError(f"unknown top-level keys {sorted(unknown)}; known: {sorted(_TOP_KEYS)}")
    for key in ("geometry", "acquisition"):
        if isinstance(data.get(key), dict):
            data[key] = [data[key]]
        if not data.get(key):
            raise ValueError(f"the sweep needs at least one [[{key}]] table")
    if "tissue" not in data:
        raise ValueError("the sweep needs a [tissue] table with a diffusivity")
    base = Path(base_dir)
    checks = parse_checks(data.get("checks"), allow)
    geometries = tuple(
        _geometry(g, registry, base, i, checks) for i, g in enumerate(data["geometry"])
    )
    written: dict[str, str] = {}
    spec = SweepSpec(
        geometries=geometries,
        tissue=_tissue(data["tissue"], written, checks),
        acquisitions=tuple(_acquisition(a, i, checks) for i, a in enumerate(data["acquisition"])),
        seed=data.get("seed", 0),
        chunk_rows=data.get("chunk_rows", 256),
        normalize=data.get("normalize", True),
        name=data.get("name", "sweep"),
        plausibility=checks,
    )
    try:
        check_tissue(spec, registry)
    except TissueKeyError as exc:
        key = written[exc.key]
        raise ConfigError(f"{key}: {exc}", (key.rsplit(" ", 1)[-1],), key.split(" ")[0]) from exc
    return spec


def load_sweep_toml(
    path: str | Path, *, registry: GeometryRegistry | None = None, allow: Iterable[str] = ()
) -> SweepSpec:
    """Read and validate a sweep TOML file (``allow``: see :func:`spec_from_toml`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep configuration {path} not found")
    from mf_dmri.io.text import read_text

    return spec_from_toml(
        read_text(path, "sweep config"), base_dir=path.parent, registry=registry, allow=allow
    )


def _surface_file(options):
    from mf_dmri.io.mesh import load_surface

    try:
        unit = file_length_unit(options.get("unit"))
    except ValueError as exc:
        raise ValueError(f"mesh files: {exc}") from None
    return load_surface(options["file"], unit=unit)


def _mesh_file_build(parameters, options, plausibility):
    from mf_dmri.sweep.mesh_shapes import solve_surface

    return solve_surface(_surface_file(options), parameters, label=Path(options["file"]).name)


def _nested_file_build(parameters, options, plausibility):
    from mf_dmri.geometry import build_compartments
    from mf_dmri.sweep.mesh_shapes import mesh_size
    from mf_dmri.sweep.nested import mesh_nested

    names = options.get("compartments")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise ValueError(
            "nested_mesh needs compartments = [names, outermost first], e.g. "
            f'compartments = ["extra", "intra"]; got {names!r}'
        )
    model = build_compartments(_surface_file(options))
    return mesh_nested(model, names, mesh_size(parameters))


def mesh_file_builder() -> GeometryBuilder:
    """Shape 'mesh': one geometry per surface file (``files = [...]``, ``unit = "um"``)."""
    from mf_dmri.sweep.mesh_shapes import MESH_PARAMETERS

    return GeometryBuilder(
        "mesh",
        _mesh_file_build,
        MESH_PARAMETERS,
        required=("length_scale",),
        options={"file": "surface mesh file (from files = [...])", "unit": "file length unit"},
        description="surface mesh files (PLY, STL, OBJ, OFF, GLB, VTK, VTU)",
    )


def nested_mesh_file_builder() -> GeometryBuilder:
    """Shape 'nested_mesh' (coupled): one geometry per file of nested closed surfaces
    (``files = [...]``, ``unit = "um"``, ``compartments = [names, outermost first]``)."""
    from mf_dmri.sweep.mesh_shapes import MESH_PARAMETERS

    return GeometryBuilder(
        "nested_mesh",
        _nested_file_build,
        MESH_PARAMETERS,
        required=("length_scale",),
        options={
            "file": "surface mesh file of nested closed surfaces (from files = [...])",
            "unit": "file length unit",
            "compartments": "compartment names, outermost first (list of strings)",
        },
        description="coupled: nested compartments of a surface file, permeable membranes",
        coupled=True,
    )


def default_registry() -> GeometryRegistry:
    """The analytic shapes, the mesh generators of ``mf_dmri.geometry``, the coupled
    generated shapes and surface mesh files, plain and nested (reading files belongs to
    ``io``, so the file shapes are added here)."""
    from mf_dmri.sweep.coupled_shapes import with_coupled_shapes
    from mf_dmri.sweep.mesh_shapes import with_mesh_generators

    registry = with_coupled_shapes(with_mesh_generators(DEFAULT_REGISTRY))
    return registry.with_builder(mesh_file_builder()).with_builder(nested_mesh_file_builder())
