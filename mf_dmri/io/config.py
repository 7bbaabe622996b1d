"""Simulation configuration files (TOML) -> SI objects, for ``mf-dmri simulate``.

Units are part of every key name (``radius_um``, ``pulse_duration_ms``, ``b_s_per_mm2``,
``diffusivity_um2_per_ms``; the vocabulary is docs/vocabulary.md, shared with
``mf-dmri sweep``); values are converted to SI here.  Unknown keys are errors, and every
error names the key as written.  Old names (``delta_ms``, ``Delta_ms``, the ``[shape]`` and
``[tissue]`` sections) are accepted with a deprecation warning.

Example (examples/simulate.toml)::

    [[compartment]]
    name = "axon"
    shape = "cylinder"           # cylinder | sphere | slab | free | mesh
    radius_um = 2.0              # a list or range table makes a phantom (one voxel each)
    axis = [0.0, 0.0, 1.0]
    diffusivity_um2_per_ms = 2.0
    signal_fraction = 0.6        # or volume_fraction; one compartment may omit it

    [[compartment]]
    name = "extra"
    shape = "free"
    diffusivity_um2_per_ms = 1.0

    [acquisition]                # see mf_dmri.io.config_acquisition
    sequence = "pgse"
    pulse_duration_ms = 10.0
    pulse_separation_ms = 30.0
    b_s_per_mm2 = [0, 1000, 3000]
    directions = 30

    [phantom]                    # optional: voxel grid, noise
    shape = [10, 10, 10]
    sigma = 0.02                 # Rician noise, relative to the unweighted signal
    seed = 1

    [output]
    path = "dwi.nii.gz"          # .csv, .npz, .nii or .nii.gz
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from mf_dmri.io.config_acquisition import Protocol, parse_acquisition
from mf_dmri.io.config_compartments import (
    CompartmentConfig,
    MeshSystemConfig,
    check_fractions,
    parse_compartment,
    parse_mesh_system,
)
from mf_dmri.io.plausible_keys import parse_checks
from mf_dmri.io.text import read_text
from mf_dmri.io.vocabulary import ConfigError, MfDmriDeprecationWarning
from mf_dmri.plausibility import Plausibility
from mf_dmri.sweep.ranges import combine_axes

SECTIONS = ("compartment", "mesh", "acquisition", "phantom", "output", "tolerance", "checks")
OUTPUT_SUFFIXES = (".csv", ".npz", ".nii", ".nii.gz")


@dataclass(frozen=True)
class PhantomConfig:
    """Voxel layout and noise: ``shape`` (x, y, z) or None for (N, 1, 1); axes crossed
    (``combine = 'product'``) or paired (``'zip'``); Rician ``sigma`` [-] relative to the
    unweighted signal (0: noise-free) with its ``seed``."""

    shape: tuple[int, int, int] | None = None
    combine: str = "product"
    sigma: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class SimulationConfig:
    """A parsed simulation config, all values SI; ``raw`` keeps the file's contents."""

    compartments: tuple[CompartmentConfig, ...]
    mesh: MeshSystemConfig | None
    protocol: Protocol
    fraction_kind: str | None
    phantom: PhantomConfig
    output: Path | None
    per_compartment: bool
    tolerance: float | None
    base_dir: Path
    raw: dict[str, Any] = field(compare=False)
    plausibility: Plausibility = field(default_factory=Plausibility, compare=False)

    def voxels(self) -> dict[tuple[str, str], np.ndarray]:
        """SI value of every (compartment, quantity) for every voxel, columns (N,)."""
        axes = {
            f"{c.name}.{name}": axis
            for c in self.compartments
            for name, axis in c.axes.items()
            if axis.count > 1
        }
        varying = combine_axes(axes, self.phantom.combine, self.phantom.seed, "phantom")
        count = len(next(iter(varying.values()))) if varying else 1
        columns = {}
        for c in self.compartments:
            for name, axis in c.axes.items():
                key = f"{c.name}.{name}"
                value = varying.get(key)
                if value is None:
                    value = np.full(count, axis.sample(self.phantom.seed, key)[0])
                columns[(c.name, name)] = value
        return columns

    def varying(self) -> list[tuple[str, str]]:
        """(compartment, quantity) pairs that differ between voxels."""
        return [(c.name, n) for c in self.compartments for n, a in c.axes.items() if a.count > 1]

    def grid_shape(self, count: int) -> tuple[int, int, int]:
        shape = self.phantom.shape or (count, 1, 1)
        if math.prod(shape) != count:
            raise ConfigError(
                f"[phantom] shape {list(shape)} holds {math.prod(shape)} voxels but the "
                f"compartment values make {count}",
                ("shape",),
                "[phantom]",
            )
        return shape


def _legacy(data: dict[str, Any]) -> dict[str, Any]:
    """[shape] + [tissue] (the old single-compartment layout) -> one [[compartment]]."""
    if "shape" not in data and "tissue" not in data:
        return data
    warnings.warn(
        "[shape] and [tissue] are deprecated; write one [[compartment]] table with shape = "
        "..., its geometry and its tissue keys (see examples/simulate.toml)",
        MfDmriDeprecationWarning,
        stacklevel=3,
    )
    if "compartment" in data:
        raise ConfigError("give [[compartment]] tables or [shape]/[tissue], not both", (), "")
    for required in ("shape", "tissue"):
        if required not in data:
            raise ConfigError(f"the config needs a [{required}] section", (required,), "")
    shape = dict(data.pop("shape"))
    if "kind" in shape:
        shape["shape"] = shape.pop("kind")
    if "normal" in shape:
        shape["axis"] = shape.pop("normal")
    tissue = dict(data.pop("tissue"))
    return {**data, "compartment": [{"name": "tissue", **shape, **tissue}]}


def _phantom(section: dict[str, Any]) -> PhantomConfig:
    unknown = set(section) - {"shape", "combine", "sigma", "seed"}
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in [phantom]", tuple(unknown), "")
    shape = section.get("shape")
    if shape is not None and not (
        isinstance(shape, list)
        and len(shape) == 3
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)
    ):
        raise ConfigError(f"[phantom] shape must be [nx, ny, nz], got {shape!r}", ("shape",), "")
    sigma = section.get("sigma", 0.0)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 <= sigma < 1:
        raise ConfigError(
            f"[phantom] sigma is the noise relative to the unweighted signal, in [0, 1); got "
            f"{sigma!r}",
            ("sigma",),
            "[phantom]",
        )
    seed = section.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"[phantom] seed must be an integer >= 0, got {seed!r}", ("seed",), "")
    combine = section.get("combine", "product")
    if combine not in ("product", "zip"):
        raise ConfigError("[phantom] combine must be product or zip", ("combine",), "")
    return PhantomConfig(None if shape is None else tuple(shape), combine, float(sigma), seed)


def _output(section: dict[str, Any], base: Path) -> tuple[Path | None, bool]:
    unknown = set(section) - {"path", "per_compartment"}
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in [output]", tuple(unknown), "")
    path = section.get("path")
    return (None if path is None else base / path), bool(section.get("per_compartment", False))


def check_output_path(path: Path) -> Path:
    if not str(path).endswith(OUTPUT_SUFFIXES):
        raise ConfigError(
            f"output {path.name!r}: the file name must end in {', '.join(OUTPUT_SUFFIXES)}",
            ("path",),
            "[output]",
        )
    return path


def load_config(path: str | Path, *, allow: Iterable[str] = ()) -> SimulationConfig:
    """Read and validate a simulation TOML file (see the module docstring); ``allow``:
    quantities added to the ``[checks] allow`` override (``mf-dmri simulate --allow``)."""
    path = Path(path)
    try:
        data = tomllib.loads(read_text(path, "config"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc
    data = _legacy(data)
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise ConfigError(
            f"unknown section(s) or key(s) {sorted(unknown)}; allowed: {list(SECTIONS)}",
            tuple(sorted(unknown)),
            "",
        )
    for required in ("compartment", "acquisition"):
        if required not in data:
            raise ConfigError(f"the config needs a [{required}] section", (required,), "")
    plausibility = parse_checks(data.get("checks"), allow)
    base = path.parent
    mesh = parse_mesh_system(data["mesh"], base, plausibility) if "mesh" in data else None
    tables = data["compartment"]
    if not isinstance(tables, list) or not tables:
        raise ConfigError("write compartments as [[compartment]] tables", ("compartment",), "")
    compartments = tuple(
        parse_compartment(t, i, base, system=mesh is not None, plausibility=plausibility)
        for i, t in enumerate(tables)
    )
    names = [c.name for c in compartments]
    if len(set(names)) != len(names):
        raise ConfigError(f"compartment names must differ, got {names}", ("name",), "")
    tolerance = data.get("tolerance")
    if tolerance is not None and not (isinstance(tolerance, (int, float)) and tolerance > 0):
        raise ConfigError(
            f"tolerance must be a positive number, got {tolerance!r}", ("tolerance",), ""
        )
    output, per_compartment = _output(data.get("output", {}), base)
    return SimulationConfig(
        compartments=compartments,
        mesh=mesh,
        protocol=parse_acquisition(data["acquisition"], base, plausibility),
        fraction_kind=None if mesh else check_fractions(compartments),
        phantom=_phantom(data.get("phantom", {})),
        output=output,
        per_compartment=per_compartment,
        tolerance=None if tolerance is None else float(tolerance),
        base_dir=base,
        raw=data,
        plausibility=plausibility,
    )
