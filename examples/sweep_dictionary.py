"""Generate a signal dictionary with a sweep, then use it for dictionary matching.

    python examples/sweep_dictionary.py [CONFIG.toml] [--out dictionary.h5] [--resume]

Runs the sweep described by CONFIG (default: examples/sweep_cylinders.toml) into an HDF5
file (resumable: rerun with --resume after an interruption), exports the parameter table
to CSV, then matches a noisy copy of a few dictionary rows back to the dictionary
(largest normalised inner product of magnitudes) and prints the parameters recovered.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mf_dmri.io.sweep_provenance import sweep_provenance
from mf_dmri.io.sweep_store import SweepStore, export_table, read_sweep
from mf_dmri.io.sweep_toml import default_registry, load_sweep_toml
from mf_dmri.sweep import build_plan, run_sweep

HERE = Path(__file__).resolve().parent


def generate(config: Path, out: Path, resume: bool) -> Path:
    registry = default_registry()
    plan = build_plan(load_sweep_toml(config, registry=registry), registry)
    print(
        f"{plan.num_rows} rows ({len(plan.geometries)} geometries x {plan.num_tissue} tissue "
        f"points) x {plan.measurements.count} measurements"
    )
    store = SweepStore(out, plan, resume=resume)

    def progress(update):
        print(
            f"\r{update.rows_done}/{update.rows_total} rows, {update.signals_per_second:,.0f} "
            f"signals/s, ETA {update.eta:.0f} s",
            end="",
            flush=True,
        )

    result = run_sweep(plan, store, registry=registry, device="auto", progress=progress)
    print(f"\n{result.basis_solves} eigenbasis solves, {result.elapsed:.1f} s")
    store.finalize(
        sweep_provenance(
            plan, device=result.device, executor="local", config_text=config.read_text()
        )
    )
    return out


def match(path: Path, rows: int = 5, noise: float = 0.01, seed: int = 0) -> None:
    data = read_sweep(path)
    atoms = np.abs(data.signals)
    atoms = atoms / np.linalg.norm(atoms, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(atoms), size=rows, replace=False)
    names = [n for n in ("shape", "radius", "diffusivity", "t2") if n in data.parameters]
    print(f"matching {rows} noisy rows (Gaussian noise sigma = {noise} of the b = 0 signal)")
    for row in picks:
        measured = np.abs(data.signals[row] + noise * rng.normal(size=data.signals.shape[1]))
        best = int(np.argmax(atoms @ (measured / np.linalg.norm(measured))))
        truth = ", ".join(f"{n}={_fmt(data.parameters[n][row])}" for n in names)
        found = ", ".join(f"{n}={_fmt(data.parameters[n][best])}" for n in names)
        print(f"  row {row}: true {truth}\n           found {found}")


def _fmt(value) -> str:
    return value if isinstance(value, str) else f"{value:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", type=Path, default=HERE / "sweep_cylinders.toml")
    parser.add_argument("--out", type=Path, default=Path("dictionary.h5"))
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    path = generate(args.config, args.out, args.resume)
    table = export_table(path, path.with_suffix(".csv"))
    print(f"signals in {path}, parameter table in {table}")
    match(path)


if __name__ == "__main__":
    main()
