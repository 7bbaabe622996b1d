"""``mf-dmri simulate CONFIG.toml``: compartments x acquisition -> signals with error bars,
as a table (CSV/NPZ) or a NIfTI phantom with its gradient table and BIDS sidecar."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mf_dmri.cli.flags import add_allow
from mf_dmri.io.vocabulary import column


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate the signals described by a TOML config (one voxel or a phantom)",
        description="Read a TOML config ([[compartment]] tables, [acquisition], optional "
        "[phantom] and [output]; units in the key names, see docs/vocabulary.md and "
        "examples/simulate.toml) and write every signal with its error bar and provenance.",
    )
    parser.add_argument("config", help="TOML config file")
    parser.add_argument(
        "-o", "--output", help="output .csv, .npz, .nii or .nii.gz (overrides [output] path)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    add_allow(parser)
    parser.set_defaults(func=run)


class _Progress:
    """One stderr line every 10 % of the voxels, with an estimate of the time left."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.start, self.shown = enabled, time.perf_counter(), -1

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < 20:
            return
        tenth = 10 * done // total
        if tenth == self.shown:
            return
        self.shown = tenth
        elapsed = time.perf_counter() - self.start
        left = elapsed / done * (total - done)
        print(
            f"simulate: {done}/{total} voxels, {elapsed:.0f} s, about {left:.0f} s left",
            file=sys.stderr,
        )


def input_hashes(config_path: Path, config) -> dict[str, str]:
    """SHA-256 of the bytes of the config file and of every file it names (meshes)."""
    from mf_dmri.io.sealed import file_sha256

    files = {str(config_path): file_sha256(config_path)}
    for compartment in config.compartments:
        for value in compartment.options.values():
            if isinstance(value, Path) and value.is_file():
                files[str(value)] = file_sha256(value)
    return files


def _provenance(config, config_path: Path) -> dict:
    from mf_dmri.io.provenance import provenance

    compartments = {
        c.name: {
            "shape": c.shape,
            "keys": dict(c.written),
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in c.options.items()},
        }
        for c in config.compartments
    }
    timing = [
        {
            "waveform": g.waveform,
            column("pulse_duration"): None if g.pulse_duration is None else g.pulse_duration * 1e3,
            column("pulse_separation"): None
            if g.pulse_separation is None
            else g.pulse_separation * 1e3,
            column("echo_time"): float(g.pieces.echo_time) * 1e3,
            "measurements": int(g.rows.size),
        }
        for g in config.protocol.groups
    ]
    return provenance(
        config.raw,
        compartments=compartments,
        timings=timing,
        tolerance=config.tolerance,
        noise_sigma=config.phantom.sigma,
        noise_seed=config.phantom.seed,
        input_sha256=input_hashes(config_path, config),
    )


def run(args: argparse.Namespace) -> int:
    from mf_dmri.cli.simulation import simulate_config
    from mf_dmri.io.config import check_output_path, load_config
    from mf_dmri.io.simulation_output import write_simulation

    config = load_config(args.config, allow=args.allow)
    output = Path(args.output) if args.output else config.output
    if output is None:
        raise ValueError("no output file: give -o FILE or [output] path in the config")
    output = check_output_path(output)
    if output.exists() and not args.overwrite:
        raise FileExistsError(
            f"output {output} already exists; pass --overwrite to replace it, or choose "
            "another file with -o"
        )
    result = simulate_config(config, progress=_Progress(not args.no_progress))
    written = write_simulation(output, config, result, _provenance(config, Path(args.config)))
    voxels, measurements = result.signals.shape
    print(
        f"mf-dmri simulate: {voxels} voxel(s) x {measurements} measurements -> "
        + ", ".join(str(p) for p in written[:3])
        + (f" (+{len(written) - 3} files)" if len(written) > 3 else "")
    )
    return 0
