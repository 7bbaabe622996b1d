"""A ``[mesh]`` system of nested compartments with permeable membranes, for
``mf-dmri simulate``: one coupled eigenbasis (:func:`mf_dmri.fem.permeable_eigenbasis`) per
distinct set of tissue values.

The regions are ordered outermost first (by nesting depth, then by decreasing volume), and
the ``[[compartment]]`` tables describe them in that order.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from mf_dmri.io.vocabulary import ConfigError, naming

logger = logging.getLogger(__name__)


def _region_order(model) -> list[int]:
    """Body indices sorted outermost first (depth, then decreasing volume)."""

    def depth(index: int) -> int:
        level = 0
        while model.parents[index] >= 0:
            index, level = model.parents[index], level + 1
        return level

    return sorted(range(model.n_compartments), key=lambda i: (depth(i), -model.volumes[i]))


def _labelled_mesh(config):
    from mf_dmri.fem import permeable_mesh
    from mf_dmri.geometry import build_compartments, tetrahedralize
    from mf_dmri.io.mesh import load_surface

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
    edge = system.axes.get("length_scale")
    edge = None if edge is None else edge.values[0]
    volume = tetrahedralize(model, length_scale=edge)
    return permeable_mesh(volume), _region_order(model)


def simulate_coupled(config, voxels, count: int, progress=None):
    from mf_dmri.cli.simulation import SimulationResult
    from mf_dmri.fem import PermeableParameters, permeable_eigenbasis
    from mf_dmri.signal import signal

    system = config.mesh
    if "length_scale" not in system.axes:
        raise ConfigError("[mesh] needs length_scale_um (the mode cutoff)", ("length_scale",), "")
    mesh, order = _labelled_mesh(config)
    by_label = [config.compartments[order.index(label)] for label in range(len(order))]
    kappa = system.axes["permeability"].values[0] if "permeability" in system.axes else 0.0
    measurements = config.protocol.num_measurements
    signals = np.zeros((count, measurements), dtype=np.complex128)
    cache = {}
    for index in range(count):

        def value(c, name, default, index=index):
            column = voxels.get((c.name, name))
            return default if column is None else float(column[index])

        tissue = tuple(
            (
                value(c, "diffusivity", None),
                value(c, "t2", math.inf),
                value(c, "spin_density", 1.0),
                value(c, "surface_relaxivity", 0.0),
            )
            for c in by_label
        )
        if tissue not in cache:
            with naming("[[compartment]]", "tissue values", system.written.get("permeability", "")):
                parameters = PermeableParameters(
                    diffusivity=tuple(t[0] for t in tissue),
                    permeability=kappa,
                    t2=tuple(t[1] for t in tissue),
                    spin_density=tuple(t[2] for t in tissue),
                    surface_relaxivity=tuple(t[3] for t in tissue),
                    plausibility=config.plausibility,
                )
                basis = permeable_eigenbasis(
                    mesh, parameters, length_scale=system.axes["length_scale"].values[0]
                )
            row = np.zeros(measurements, dtype=np.complex128)
            for group in config.protocol.groups:
                row[group.rows] = signal(basis, group.pieces).detach().numpy()
            cache[tissue] = row
        signals[index] = cache[tissue]
        if progress is not None:
            progress(index + 1, count)
    note = (
        "coupled (permeable) systems: the signal library gives no error bar for a "
        "CoupledBasis yet, so signal_error_bar is NaN; per-compartment signals are not "
        "defined for exchanging compartments"
    )
    return SimulationResult(signals, np.full(signals.shape, np.nan), {}, voxels, (note,))
