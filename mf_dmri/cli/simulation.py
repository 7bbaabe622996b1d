"""Run a simulation config: every voxel's signal with its error bar (``mf-dmri simulate``).

Impermeable compartments add linearly (:func:`mf_dmri.signal.compartment.compartment_weights`),
so each compartment's attenuation is computed once per distinct geometry and diffusivity with
:func:`mf_dmri.signal.signal_with_error` and reused by every voxel; the voxel's error bar is
the weighted sum of its compartments' bars (a bound, by the triangle inequality).  A
``[mesh]`` system with permeable membranes is one coupled eigenbasis per distinct set of
tissue values.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from mf_dmri.io.config import SimulationConfig
from mf_dmri.io.config_compartments import CompartmentConfig
from mf_dmri.io.vocabulary import ConfigError, naming
from mf_dmri.signal import Compartment, signal_with_error
from mf_dmri.signal.compartment import compartment_weights

logger = logging.getLogger(__name__)
GEOMETRY = ("radius", "length", "width", "length_scale", "max_eigenvalue")


@dataclass(frozen=True)
class SimulationResult:
    """Signals of N voxels x M measurements: complex ``signals``, ``error_bars`` [-] (of
    :func:`mf_dmri.signal.signal_with_error`), real contributions of each compartment
    (they add up to the signals' real part; empty for a coupled system) and the voxel
    values."""

    signals: np.ndarray
    error_bars: np.ndarray
    contributions: dict[str, np.ndarray]
    voxels: dict[tuple[str, str], np.ndarray]
    notes: tuple[str, ...] = ()


def _domain(compartment: CompartmentConfig, values: dict[str, float], plausibility=None):
    from mf_dmri.analytic import cylinder, free, slab, sphere

    cutoff = {k: values[k] for k in ("length_scale", "max_eigenvalue") if k in values}
    cutoff["plausibility"] = plausibility
    shape, options = compartment.shape, compartment.options
    if shape == "cylinder":
        return cylinder(values["radius"], options["axis"], length=values.get("length"), **cutoff)
    if shape == "sphere":
        return sphere(values["radius"], **cutoff)
    if shape == "slab":
        return slab(values["width"], options["axis"], **cutoff)
    if shape == "free":
        return free()
    del cutoff["plausibility"]
    return _mesh_domain(compartment, cutoff)


def _mesh_domain(compartment: CompartmentConfig, cutoff: dict[str, float]):
    from mf_dmri.fem import DEFAULT_ELEMENT_ORDER, mesh_eigenbasis
    from mf_dmri.geometry import tetrahedralize
    from mf_dmri.io.mesh import load_surface

    if not cutoff:
        raise ConfigError(
            f"{compartment.where()} (shape mesh) needs length_scale_um, the shortest "
            "wavelength kept (e.g. a fifth of the cell's size)",
            ("length_scale_um",),
            compartment.where(),
        )
    surface = load_surface(compartment.options["path"], unit=compartment.options["unit"])
    _check_surface_file(surface, compartment)
    edge = cutoff.get("length_scale")
    volume = tetrahedralize(surface, length_scale=edge)
    order = compartment.options.get("element_order", DEFAULT_ELEMENT_ORDER)
    return mesh_eigenbasis(volume.nodes, volume.elements, order=order, **cutoff)


def _check_surface_file(surface, compartment: CompartmentConfig) -> None:
    """Refuse a surface that cannot be meshed, with the fixes worded as commands."""
    from mf_dmri.cli.mesh import repaired_name
    from mf_dmri.geometry import check_surface

    report = check_surface(surface)
    if report.ok:
        return
    path = str(compartment.options["path"])
    repaired = repaired_name(path)
    lines = report.summary(for_cli=True).replace("IN OUT", f"{path} {repaired}")
    lines = lines.replace("--unit UNIT", f"--unit {_unit_name(compartment.options['unit'])}")
    problems = "\n".join(line for line in lines.splitlines() if line.startswith("PROBLEM"))
    raise ConfigError(
        f"{compartment.where()} path: the surface {path} cannot be meshed:\n{problems}\n"
        f"then set path = {repaired!r}; a real (segmented) cell surface also wants "
        "--remesh-max-edge (in the file's unit, about 1 um) on that repair",
        ("path",),
        compartment.where(),
    )


def _unit_name(unit: float) -> str:
    """The config's mesh unit [m per file unit] as ``--unit`` takes it: its name, or the
    number of metres."""
    from mf_dmri.io.vocabulary import UNITS

    names = [name for name, value in UNITS["length"].items() if value == unit]
    return min(names, key=len) if names else f"{unit:g}"


def _values(voxels, compartment: CompartmentConfig, index: int) -> dict[str, float]:
    return {q: float(voxels[(compartment.name, q)][index]) for q in compartment.axes}


class _Attenuations:
    """Normalised attenuation and error bar of a compartment per distinct geometry and
    diffusivity, per measurement group (memoised)."""

    def __init__(self, config: SimulationConfig, progress=None, count: int = 1) -> None:
        self.config = config
        self.domains: dict = {}
        self.results: dict = {}
        self.progress, self.calls, self.count = progress, 0, count * len(config.compartments)

    def domain(self, compartment: CompartmentConfig, values: dict[str, float]):
        key = (compartment.name,) + tuple(values.get(q) for q in GEOMETRY)
        if key not in self.domains:
            written = [compartment.key(q) for q in GEOMETRY if q in values] or [compartment.where()]
            with naming("", *written):
                self.domains[key] = _domain(compartment, values, self.config.plausibility)
        return key, self.domains[key]

    def __call__(self, compartment: CompartmentConfig, values: dict[str, float]):
        key, domain = self.domain(compartment, values)
        full = key + (values["diffusivity"],)
        if full not in self.results:
            tolerance = (
                {} if self.config.tolerance is None else {"tolerance": self.config.tolerance}
            )
            with naming("", compartment.key("diffusivity")):
                single = Compartment(
                    domain, values["diffusivity"], plausibility=self.config.plausibility
                )
            per_group = []
            for group in self.config.protocol.groups:
                result = signal_with_error(single, group.pieces, **tolerance)
                per_group.append((result.signal.detach(), result.error_bar.detach()))
            self.results[full] = (domain, per_group)
        self.calls += 1
        if self.progress is not None:
            self.progress(self.calls, self.count)
        return self.results[full]


def _fractions(config: SimulationConfig, voxels, index: int) -> dict[str, float] | None:
    """Volume fraction of each compartment in voxel ``index`` (None: volume weighting)."""
    kind = config.fraction_kind
    if kind is None:
        return None
    given = {
        c.name: float(voxels[(c.name, kind)][index]) for c in config.compartments if kind in c.axes
    }
    rest = [c.name for c in config.compartments if kind not in c.axes]
    total = sum(given.values())
    if rest:
        if total > 1 + 1e-12:
            raise ConfigError(
                f"[[compartment]] {kind} values add up to {total:g} > 1 in voxel {index}, "
                f"leaving nothing for {rest[0]!r}",
                (kind,),
                "[[compartment]]",
            )
        given[rest[0]] = max(0.0, 1.0 - total)
    if kind == "volume_fraction":
        return given
    # signal fraction s_c = f_c rho_c / sum f rho  ->  f_c proportional to s_c / rho_c
    densities = {
        c.name: float(voxels.get((c.name, "spin_density"), [1.0] * (index + 1))[index])
        for c in config.compartments
    }
    if any(densities[n] == 0 and given[n] > 0 for n in given):
        raise ConfigError(
            "a compartment with spin_density 0 cannot carry a signal_fraction",
            ("spin_density",),
            "[[compartment]]",
        )
    raw = {n: (given[n] / densities[n] if densities[n] > 0 else 0.0) for n in given}
    norm = sum(raw.values())
    return {n: v / norm for n, v in raw.items()}


def _check_kinds(config: SimulationConfig, compartments) -> None:
    """The library's rule: without fractions, compartments must be of one kind."""
    if config.fraction_kind is None and len({c.kind for c in compartments}) > 1:
        with naming("[[compartment]]", "volume_fraction/signal_fraction"):
            compartment_weights(tuple(compartments), torch.zeros((), dtype=torch.float64))


def _sizes(config: SimulationConfig, voxels, count: int, domains) -> dict[str, np.ndarray]:
    """Per compartment, the volume fraction or (without fractions) the volume of each
    voxel [-] or [m^3]."""
    if config.fraction_kind is None:
        return {
            c.name: np.array([float(domains[c.name][v].volume) for v in range(count)])
            for c in config.compartments
        }
    fractions = [_fractions(config, voxels, v) for v in range(count)]
    return {c.name: np.array([f[c.name] for f in fractions]) for c in config.compartments}


def _combine(config: SimulationConfig, voxels, count: int, attenuations: _Attenuations):
    """Signals, error bars and contributions of every voxel: sum over compartments of
    size x spin density x exp(-TE/T2) x attenuation, over sum of size x spin density
    (the weights of :func:`mf_dmri.signal.compartment.compartment_weights`)."""
    measurements = config.protocol.num_measurements
    signals = np.zeros((count, measurements), dtype=np.complex128)
    bars = np.zeros((count, measurements))
    parts = {c.name: np.zeros((count, measurements)) for c in config.compartments}
    rows, domains = {}, {}
    for c in config.compartments:
        rows[c.name], domains[c.name] = [], []
        for v in range(count):
            domain, per_group = attenuations(c, _values(voxels, c, v))
            rows[c.name].append(per_group)
            domains[c.name].append(domain)
    representatives = []
    for c in config.compartments:
        values = _values(voxels, c, 0)
        with naming("", c.key("diffusivity")):
            representatives.append(
                Compartment(
                    domains[c.name][0], values["diffusivity"], plausibility=config.plausibility
                )
            )
    _check_kinds(config, representatives)
    sizes = _sizes(config, voxels, count, domains)
    names = [c.name for c in config.compartments]
    density = {n: voxels.get((n, "spin_density"), np.ones(count)) for n in names}
    t2 = {n: voxels.get((n, "t2"), np.full(count, math.inf)) for n in names}
    reference = sum(sizes[c.name] * density[c.name] for c in config.compartments)
    if (reference <= 0).any():
        raise ConfigError("every compartment has zero spin density in some voxel", (), "")
    for g, group in enumerate(config.protocol.groups):
        echo_time = float(group.pieces.echo_time)
        total = np.zeros((count, group.rows.size), dtype=np.complex128)
        bar = np.zeros((count, group.rows.size))
        for c in config.compartments:
            share = sizes[c.name] * density[c.name] * np.exp(-echo_time / t2[c.name]) / reference
            value = np.stack([per_group[g][0].numpy() for per_group in rows[c.name]])
            error = np.stack([per_group[g][1].numpy() for per_group in rows[c.name]])
            total += share[:, None] * value
            bar += np.abs(share)[:, None] * error
            parts[c.name][:, group.rows] = (share[:, None] * value).real
        signals[:, group.rows] = total
        bars[:, group.rows] = bar
    return signals, bars, parts


def simulate_config(config: SimulationConfig, progress=None) -> SimulationResult:
    """Every voxel's signal (see the module docstring); ``progress(done, total)``."""
    voxels = config.voxels()
    count = len(next(iter(voxels.values())))
    config.grid_shape(count)
    if config.mesh is not None:
        from mf_dmri.cli.simulation_coupled import simulate_coupled

        return simulate_coupled(config, voxels, count, progress)
    attenuations = _Attenuations(config, progress, count)
    signals, bars, parts = _combine(config, voxels, count, attenuations)
    logger.info("simulate: %d voxels, %d distinct attenuations", count, len(attenuations.results))
    return SimulationResult(signals, bars, parts, voxels)
