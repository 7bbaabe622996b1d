"""Simulation configuration files (TOML) -> SI objects.

Units are explicit in every key name (``radius_um``, ``delta_ms``, ``b_s_per_mm2``,
``diffusivity_um2_per_ms``); this module is the only place where they are converted to SI.
Unknown keys are errors (a typo must not be silently ignored).

Example::

    [shape]
    kind = "cylinder"          # cylinder | sphere | slab | mesh
    radius_um = 5.0
    axis = [0.0, 0.0, 1.0]

    [tissue]
    diffusivity_um2_per_ms = 2.0
    t2_ms = 80.0               # optional

    [acquisition]
    sequence = "pgse"          # pgse | ogse_cos | ogse_sin
    delta_ms = 10.0
    Delta_ms = 30.0
    b_s_per_mm2 = [0, 1000, 3000]
    directions = 30            # number of directions per shell, or ...
    # bvals = "dwi.bval"  bvecs = "dwi.bvec"   (FSL files; paths relative to the config)

    [output]
    path = "signals.csv"       # .csv or .npz
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from mf_dmri import units

_SECTIONS = {
    "shape": {
        "kind",
        "radius_um",
        "width_um",
        "axis",
        "normal",
        "length_um",
        "path",
        "unit",
        "length_scale_um",
        "max_eigenvalue_per_m2",
    },
    "tissue": {"diffusivity_um2_per_ms", "t2_ms", "spin_density"},
    "acquisition": {
        "sequence",
        "delta_ms",
        "Delta_ms",
        "b_s_per_mm2",
        "directions",
        "bvals",
        "bvecs",
        "periods",
        "time_step_us",
    },
    "output": {"path"},
}


@dataclass(frozen=True)
class SimulationConfig:
    """A parsed simulation config, all values SI; ``raw`` keeps the file's contents."""

    shape: dict[str, Any]
    diffusivity: float
    t2: float
    spin_density: float
    acquisition: dict[str, Any]
    output: Path | None
    base_dir: Path
    raw: dict[str, Any] = field(compare=False)


def _check_keys(data: dict[str, Any]) -> None:
    for section in data:
        if section not in _SECTIONS:
            raise ValueError(f"unknown section [{section}]; allowed: {sorted(_SECTIONS)}")
        unknown = set(data[section]) - _SECTIONS[section]
        if unknown:
            raise ValueError(
                f"unknown key(s) {sorted(unknown)} in [{section}]; allowed: "
                f"{sorted(_SECTIONS[section])} (units are part of the key name)"
            )
    for required in ("shape", "tissue", "acquisition"):
        if required not in data:
            raise ValueError(f"the config needs a [{required}] section")


def _get(
    section: dict[str, Any], key: str, name: str, scale: float = 1.0, default: float | None = None
) -> float:
    if key not in section:
        if default is None:
            raise ValueError(f"[{name}] needs '{key}'")
        return default
    value = section[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"[{name}] {key} must be a finite number, got {value!r}")
    return float(value) * scale


def _shape(section: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    kind = section.get("kind")
    shape: dict[str, Any] = {"kind": kind}
    if kind in ("cylinder", "sphere"):
        shape["radius"] = _get(section, "radius_um", "shape", units.um)
    elif kind == "slab":
        shape["width"] = _get(section, "width_um", "shape", units.um)
    elif kind == "mesh":
        if "path" not in section or "unit" not in section:
            raise ValueError("[shape] kind = 'mesh' needs 'path' and 'unit' (um, nm, mm or m)")
        shape["path"] = base_dir / section["path"]  # relative to the config file
        shape["unit"] = unit_scale(section["unit"])
    else:
        raise ValueError(f"[shape] kind must be cylinder, sphere, slab or mesh, got {kind!r}")
    shape["axis"] = tuple(section.get("axis", (0.0, 0.0, 1.0)))
    shape["normal"] = tuple(section.get("normal", (1.0, 0.0, 0.0)))
    if "length_um" in section:
        shape["length"] = _get(section, "length_um", "shape", units.um)
    if "length_scale_um" in section:
        shape["length_scale"] = _get(section, "length_scale_um", "shape", units.um)
    if "max_eigenvalue_per_m2" in section:
        shape["max_eigenvalue"] = _get(section, "max_eigenvalue_per_m2", "shape")
    return shape


def unit_scale(name: str) -> float:
    """Metres per unit for a length-unit name ('m', 'mm', 'um', 'nm')."""
    table = {"m": units.m, "mm": units.mm, "um": units.um, "nm": units.nm}
    if name not in table:
        raise ValueError(f"unknown length unit {name!r}; use one of {sorted(table)}")
    return table[name]


def _acquisition(section: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    acq: dict[str, Any] = {
        "sequence": section.get("sequence", "pgse"),
        "pulse_duration": _get(section, "delta_ms", "acquisition", units.ms),
        "pulse_separation": _get(section, "Delta_ms", "acquisition", units.ms),
    }
    if acq["sequence"] not in ("pgse", "ogse_cos", "ogse_sin"):
        raise ValueError("[acquisition] sequence must be 'pgse', 'ogse_cos' or 'ogse_sin'")
    if acq["sequence"] != "pgse":
        acq["periods"] = int(_get(section, "periods", "acquisition"))
    if "time_step_us" in section:
        acq["time_step"] = _get(section, "time_step_us", "acquisition", units.us)
    if "bvals" in section or "bvecs" in section:
        if "bvals" not in section or "bvecs" not in section:
            raise ValueError("[acquisition] give both 'bvals' and 'bvecs' FSL files")
        acq["bvals"] = base_dir / section["bvals"]
        acq["bvecs"] = base_dir / section["bvecs"]
        return acq
    bvalues = section.get("b_s_per_mm2")
    if not isinstance(bvalues, list) or not bvalues:
        raise ValueError("[acquisition] needs a non-empty list 'b_s_per_mm2' (or bvals/bvecs)")
    acq["bvalues"] = [float(b) * units.s_per_mm2 for b in bvalues]
    acq["directions"] = int(section.get("directions", 1))
    if acq["directions"] < 1:
        raise ValueError("[acquisition] directions must be >= 1")
    return acq


def load_config(path: str | Path) -> SimulationConfig:
    """Read and validate a simulation TOML file (see the module docstring)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc
    _check_keys(data)
    tissue = data["tissue"]
    output = data.get("output", {}).get("path")
    return SimulationConfig(
        shape=_shape(data["shape"], path.parent),
        diffusivity=_get(tissue, "diffusivity_um2_per_ms", "tissue", units.um2_per_ms),
        t2=_get(tissue, "t2_ms", "tissue", units.ms, default=math.inf),
        spin_density=_get(tissue, "spin_density", "tissue", default=1.0),
        acquisition=_acquisition(data["acquisition"], path.parent),
        output=None if output is None else path.parent / output,
        base_dir=path.parent,
        raw=data,
    )
