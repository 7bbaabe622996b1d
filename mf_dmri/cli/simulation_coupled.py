"""A ``[mesh]`` system of nested compartments with permeable membranes, for
``mf-dmri simulate``: the regions are meshed once and solved for one coupled eigenbasis
(:func:`mf_dmri.fem.permeable_eigenbasis`) per distinct set of tissue values, by the steps
that ``mf-dmri sweep``'s coupled shapes use (:mod:`mf_dmri.sweep.nested`).

The regions are ordered outermost first (by nesting depth, then by decreasing volume), and
the ``[[compartment]]`` tables describe them in that order.
"""

from __future__ import annotations

import logging

import numpy as np

from mf_dmri.io.vocabulary import ConfigError, naming

logger = logging.getLogger(__name__)


def _nested_mesh(config):
    from mf_dmri.geometry import build_compartments
    from mf_dmri.io.mesh import load_surface
    from mf_dmri.sweep.nested import mesh_nested

    system = config.mesh
    with naming("[mesh]", "path", "unit"):
        model = build_compartments(load_surface(system.path, unit=system.unit))
    if model.n_compartments != len(config.compartments):
        raise ConfigError(
            f"[mesh] {system.path.name} has {model.n_compartments} nested regions but the "
            f"config describes {len(config.compartments)} [[compartment]] tables: give one "
            "per region, outermost first",
            ("compartment",),
            "[mesh]",
        )
    edge = system.axes["length_scale"].values[0]
    return mesh_nested(model, [c.name for c in config.compartments], edge)


def _voxel_tissue(config, voxels, index: int, kappa: float) -> dict[str, float]:
    """SI tissue values of voxel ``index`` (``"<compartment>.<name>"`` keys)."""
    tissue = {"permeability": kappa}
    for c in config.compartments:
        for name in ("diffusivity", "t2", "spin_density", "surface_relaxivity"):
            column = voxels.get((c.name, name))
            if column is not None:
                tissue[f"{c.name}.{name}"] = float(column[index])
    return tissue


def simulate_coupled(config, voxels, count: int, progress=None):
    from mf_dmri.cli.simulation import SimulationResult
    from mf_dmri.signal import signal_with_error

    system = config.mesh
    if "length_scale" not in system.axes:
        raise ConfigError("[mesh] needs length_scale_um (the mode cutoff)", ("length_scale",), "")
    nested = _nested_mesh(config)
    length_scale = system.axes["length_scale"].values[0]
    kappa = system.axes["permeability"].values[0] if "permeability" in system.axes else 0.0
    measurements = config.protocol.num_measurements
    signals = np.zeros((count, measurements), dtype=np.complex128)
    bars = np.zeros((count, measurements))
    cache = {}
    for index in range(count):
        tissue = _voxel_tissue(config, voxels, index, kappa)
        key = tuple(sorted(tissue.items()))
        if key not in cache:
            with naming("[[compartment]]", "tissue values", system.written.get("permeability", "")):
                basis = nested.basis(tissue, length_scale, plausibility=config.plausibility)
            row = np.zeros(measurements, dtype=np.complex128)
            bar = np.zeros(measurements)
            for group in config.protocol.groups:
                result = signal_with_error(basis, group.pieces)
                row[group.rows] = result.signal.detach().numpy()
                bar[group.rows] = result.error_bar.numpy()
            cache[key] = row, bar
        signals[index], bars[index] = cache[key]
        if progress is not None:
            progress(index + 1, count)
    note = (
        "coupled (permeable) systems: signal_error_bar is the truncation error of the "
        "coupled basis (the larger of two consecutive changes at doubled rates) plus the "
        "propagation "
        "error; per-compartment signals are not defined for exchanging compartments"
    )
    return SimulationResult(signals, bars, {}, voxels, (note,))
