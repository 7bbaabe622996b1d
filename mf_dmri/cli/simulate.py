"""``mf-dmri simulate CONFIG.toml``: one shape, one tissue, one acquisition -> CSV/NPZ."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mf_dmri import units
from mf_dmri.io.config import SimulationConfig, load_config
from mf_dmri.io.results import provenance, write_table
from mf_dmri.signal import Compartment, signal


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate the signal described by a TOML config",
        description="Read a TOML config ([shape], [tissue], [acquisition], [output]; units "
        "in the key names, see mf_dmri.io.config) and write the signals with "
        "the config and the package version recorded.",
    )
    parser.add_argument("config", help="TOML config file")
    parser.add_argument("-o", "--output", help="output .csv or .npz (overrides [output])")
    parser.set_defaults(func=run)


def build_domain(shape: dict):
    """The eigen-data of the configured shape (analytic, or a mesh through the FEM path)."""
    from mf_dmri.analytic import cylinder, slab, sphere

    cutoff = {k: shape[k] for k in ("max_eigenvalue", "length_scale") if k in shape}
    if shape["kind"] == "cylinder":
        return cylinder(shape["radius"], shape["axis"], length=shape.get("length"), **cutoff)
    if shape["kind"] == "sphere":
        return sphere(shape["radius"], **cutoff)
    if shape["kind"] == "slab":
        return slab(shape["width"], shape["normal"], **cutoff)
    return _mesh_domain(shape, cutoff)


def _mesh_domain(shape: dict, cutoff: dict):
    from mf_dmri.fem import mesh_eigenbasis
    from mf_dmri.geometry import tetrahedralize, validate_surface
    from mf_dmri.io.mesh import load_surface

    surface = load_surface(shape["path"], unit=shape["unit"])
    validate_surface(surface)
    volume = tetrahedralize(surface)
    return mesh_eigenbasis(volume.nodes, volume.elements, **cutoff)


def build_acquisition(acq: dict):
    """The configured acquisition (PGSE/OGSE, shells x directions or FSL files)."""
    from mf_dmri.sequences import OGSE, PGSE, multi_shell

    if acq["sequence"] == "pgse":
        waveform = PGSE(acq["pulse_duration"], acq["pulse_separation"])
    else:
        waveform = OGSE(
            acq["pulse_duration"],
            acq["pulse_separation"],
            acq["periods"],
            kind=acq["sequence"].split("_")[1],
        )
    if "bvals" in acq:
        from mf_dmri.io.fsl import read_fsl_scheme
        from mf_dmri.sequences import Acquisition

        bvalues, directions = read_fsl_scheme(acq["bvals"], acq["bvecs"])
        return Acquisition.from_bvalues(waveform, bvalues, directions)
    return multi_shell(waveform, acq["bvalues"], acq["directions"])


def simulate(config: SimulationConfig):
    """(acquisition, complex signal) for a parsed config."""
    domain = build_domain(config.shape)
    compartment = Compartment(
        domain, config.diffusivity, t2=config.t2, spin_density=config.spin_density
    )
    acquisition = build_acquisition(config.acquisition)
    values = signal(compartment, acquisition, time_step=config.acquisition.get("time_step"))
    return acquisition, values


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    output = Path(args.output) if args.output else config.output
    if output is None:
        raise ValueError("no output file: give -o FILE or [output] path in the config")
    acquisition, values = simulate(config)
    pieces = acquisition.pieces(config.acquisition.get("time_step"))
    gradients = acquisition.directions.reshape(acquisition.num_measurements, -1, 3)[:, 0]
    gradients = gradients * acquisition.amplitudes[:, None]
    columns = {"b_s_per_mm2": pieces.bvalues().detach().numpy() / units.s_per_mm2}
    for axis, name in enumerate("xyz"):
        columns[f"g{name}_mT_per_m"] = gradients[:, axis].detach().numpy() / units.mT_per_m
    signal_np = values.detach().numpy()
    columns.update(
        signal_real=signal_np.real, signal_imag=signal_np.imag, signal_abs=np.abs(signal_np)
    )
    path = write_table(output, columns, provenance(config.raw))
    print(f"mf-dmri simulate: {acquisition.num_measurements} measurements -> {path}")
    return 0
