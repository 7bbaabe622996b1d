"""Free-form shape reconstruction: the three example targets (ellipsoidal cell, beaded axon,
undulating axon), noise-free and at SNR 50, at full size.

Runs the examples (examples/reconstruct_*.py) with their outputs (PLY, loss history JSON,
PNG of truth / start / result) in benchmarks/results/reconstruction/, copies the PNGs to
docs/img/, and writes the table benchmarks/results/reconstruction.md from every history
file found there (so runs may be done one at a time: ``--only beaded --snr 50``).

Usage: python benchmarks/bench_reconstruction.py [--only NAME ...] [--snr 0 50 ...]
       [--collect]   (only rebuild the table)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "benchmarks" / "results" / "reconstruction"
TABLE = ROOT / "benchmarks" / "results" / "reconstruction.md"
sys.path.insert(0, str(ROOT / "examples"))

NAMES = ("ellipsoid", "beaded_axon", "undulating_axon")


def run_one(name: str, snr: float | None) -> None:
    """Run one example at full size; its outputs go to FOLDER/<name>_<noise>/ ."""
    tag = "noise_free" if snr is None else f"snr{snr:g}"
    folder = FOLDER / f"{name}_{tag}"
    module = __import__(f"reconstruct_{name}")
    load = os.getloadavg()[0]
    tic = time.perf_counter()
    module.main(small=False, snr=snr, output=str(folder))
    machine = {
        "load_average_1min_at_start": load,
        "load_average_1min_at_end": os.getloadavg()[0],
        "seconds_total": time.perf_counter() - tic,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    (folder / "machine.json").write_text(json.dumps(machine))
    for png in folder.glob("*.png"):
        target = ROOT / "docs" / "img" / f"reconstruction_{name}_{tag}.png"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(png, target)


def collect() -> str:
    """Markdown table of every run found in FOLDER."""
    rows = [
        "| target | noise | Chamfer start -> result [um] | reduction | Hausdorff start -> "
        "result [um] | volume error start / result | misfit first -> best | optimisation / "
        "total wall [s] | load (1 min) start / end |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    nan = float("nan")
    for folder in sorted(FOLDER.glob("*_*")):
        histories = list(folder.glob("*history.json"))
        if not histories:
            continue
        h = json.loads(histories[0].read_text())
        machine = json.loads((folder / "machine.json").read_text())
        c, d, v = h["chamfer_um"], h["hausdorff_um"], h["volume_um3"]
        label = folder.name.removesuffix("_fine_reference")
        name, _, noise = label.partition("_n") if "noise" in label else (
            label.rpartition("_snr")[0], "", "SNR " + label.rpartition("_snr")[2]
        )  # fmt: skip
        name += " (fine reference)" if label != folder.name else ""
        noise = "noise-free" if noise.startswith("oise") else f"{noise} (Gaussian)"
        rows.append(
            f"| {name} | {noise} | {c[0]:.3f} -> {c[1]:.3f} | {100 * (1 - c[1] / c[0]):.0f} % "
            f"| {d[0]:.3f} -> {d[1]:.3f} | {100 * (v[1] / v[0] - 1):+.1f} % / "
            f"{100 * (v[2] / v[0] - 1):+.1f} % | {h['misfit'][0]:.0f} -> {min(h['misfit']):.1f}"
            f" | {h.get('seconds', nan):.0f} / {machine.get('seconds_total', nan):.0f} "
            f"| {machine['load_average_1min_at_start']:.1f} / "
            f"{machine.get('load_average_1min_at_end', nan):.1f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", default=list(NAMES), choices=NAMES)
    parser.add_argument("--snr", nargs="*", type=float, default=None,
                        help="SNR values, 0 for noise-free (default: 0 50)")  # fmt: skip
    parser.add_argument("--collect", action="store_true", help="only rebuild the table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.collect:
        for name in args.only:
            for snr in [0.0, 50.0] if args.snr is None else args.snr:
                run_one(name, snr if snr > 0 else None)
    table = collect()
    header = (
        "# Free-form reconstruction (benchmarks/bench_reconstruction.py)\n\n"
        "Distances after removing translation and point reflection (docs/inverse.md, "
        "section 4).  Wall times (the optimisation; the whole run including the target's "
        "mesh and signal) on a 2-core machine shared with other jobs, single-threaded; the "
        "1-minute load average at the start and end of each run is given: times are "
        "inflated accordingly (a load of 10 on 2 cores is a fifth of a core per job).\n\n"
    )
    TABLE.write_text(header + table + "\n")
    print(table)


if __name__ == "__main__":
    main()
