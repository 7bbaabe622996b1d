"""Where the repair's volume change comes from, on the five navis example meshes.

The reference: the raw faces with repeated faces (same vertices, same winding) kept once
form a closed chain (every edge used as often in each direction) whose winding number w
is an integer off the surface; its divergence-theorem volume is the integral of w, and
the solid it describes is S = {w >= 1}.  This script measures, per cell:

* whether the chain is closed (edges used unevenly; the raw faces as given are not);
* the volume of S and of its ill-defined parts (w >= 2: overlapping pieces counted twice
  by the integral; w < 0: inward pieces), by sampling w (gpytoolbox fast winding number,
  rounded) at points uniform in cubes covering both surfaces;
* the repaired surface R: its volume change against the chain, the volume of R outside
  S and of S outside R (same samples), and the volume change of each repair action.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_repair_volume.py [--cells ID,...]
       [--cube-um 2] [--per-cube 1000]
Writes benchmarks/results/repair_volume.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NAVIS_IDS = ("1734350788", "1734350908", "722817260", "754534424", "754538881")


def _raw(cell_id: str):
    import navis

    from mf_dmri import units
    from mf_dmri.geometry import SurfaceMesh

    neuron = navis.example_neurons(kind="mesh")[NAVIS_IDS.index(cell_id)]
    vertices = np.asarray(neuron.vertices, dtype=np.float64) * 8 * units.nm
    return SurfaceMesh(vertices, np.asarray(neuron.faces, dtype=np.int64))


def _chain(faces: np.ndarray) -> np.ndarray:
    """The faces with repeated faces (same cyclic vertex order) kept once."""
    rotated = np.array([np.roll(f, -int(np.argmin(f))) for f in faces])
    _, first = np.unique(rotated, axis=0, return_index=True)
    return faces[np.sort(first)]


def _uneven_edges(faces: np.ndarray) -> int:
    """Edges not used equally often in both directions (0 for a closed chain)."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    sign = np.where(edges[:, 0] < edges[:, 1], 1, -1)
    keys, inverse = np.unique(np.sort(edges, axis=1), axis=0, return_inverse=True)
    total = np.zeros(len(keys))
    np.add.at(total, inverse.reshape(-1), sign)
    return int((total != 0).sum())


def _samples(surfaces, cube: float, per_cube: int, rng) -> np.ndarray:
    """Points uniform in the cubes (side ``cube``, same units as the surfaces) within 1.5
    cubes of a vertex of any surface or with their centre inside one."""
    import gpytoolbox
    from scipy.spatial import cKDTree

    vertices = np.vstack([v for v, _ in surfaces])
    low, high = vertices.min(axis=0) - cube, vertices.max(axis=0) + cube
    axes = [np.arange(lo + cube / 2, hi, cube) for lo, hi in zip(low, high, strict=True)]
    centres = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    near = np.isfinite(cKDTree(vertices).query(centres, distance_upper_bound=1.5 * cube)[0])
    inside = np.zeros(len(centres), dtype=bool)
    for v, f in surfaces:
        inside[~near] |= gpytoolbox.fast_winding_number(centres[~near], v, f) > 0.5
    kept = centres[near | inside]
    offsets = rng.uniform(-cube / 2, cube / 2, size=(len(kept), per_cube, 3))
    return (kept[:, None, :] + offsets).reshape(-1, 3)


def measure(cell_id: str, cube_um: float, per_cube: int) -> dict:
    import gpytoolbox

    from mf_dmri import units
    from mf_dmri.geometry import repair_surface
    from mf_dmri.geometry.repair_steps import signed_volume

    raw = _raw(cell_id)
    chain = _chain(raw.faces)
    start = time.perf_counter()
    repaired, report = repair_surface(raw)
    seconds = time.perf_counter() - start
    um = units.um
    surfaces = [(raw.vertices / um, chain), (repaired.vertices / um, repaired.faces)]
    points = _samples(surfaces, cube_um, per_cube, np.random.default_rng(0))
    w = np.rint(gpytoolbox.fast_winding_number(points, *surfaces[0]))
    in_r = gpytoolbox.fast_winding_number(points, *surfaces[1]) > 0.5
    unit = cube_um**3 / per_cube  # um^3 per sample
    in_s = w >= 1
    chain_volume = signed_volume(raw.vertices, chain) / um**3
    return {
        "cell": cell_id,
        "uneven_raw": _uneven_edges(raw.faces),
        "uneven_chain": _uneven_edges(chain),
        "chain": chain_volume,
        "s": in_s.sum() * unit,
        "twice": np.clip(w - 1, 0, None).sum() * unit,
        "negative": -np.clip(w, None, 0).sum() * unit,
        "r": repaired.signed_volume() / um**3,
        "r_sampled": in_r.sum() * unit,
        "r_not_s": (in_r & ~in_s).sum() * unit,
        "s_not_r": (in_s & ~in_r).sum() * unit,
        "samples_inside": int(in_s.sum()),
        "actions": [(a.kind, a.count, a.volume_change / um**3) for a in report.actions],
        "before": report.volume_before / um**3,
        "seconds": seconds,
    }


def _table(rows: list[dict], args) -> str:
    lines = [
        "# Repair volume change: the reference and where the change comes from",
        "",
        f"Generated by `OMP_NUM_THREADS=1 python benchmarks/bench_repair_volume.py "
        f"--cube-um {args.cube_um} --per-cube {args.per_cube}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).  Volumes in um^3.  "
        "chain: the raw faces with repeated faces kept once (the repair's reference, "
        "`RepairReport.volume_before`); S = {w >= 1} of its winding number w; R: "
        "`repair_surface(raw)` (default settings).  Sampled volumes: "
        f"{args.per_cube} points per {args.cube_um} um cube (statistical error of a "
        "sampled volume v about sqrt(v x cube^3 / per_cube)).",
        "",
        "| cell | uneven edges raw / chain | chain volume | vol S | w>=2 excess | w<0 | "
        "R | R vs chain | R outside S | S outside R |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        change = 100 * (r["r"] - r["chain"]) / r["chain"]
        lines.append(
            f"| {r['cell']} | {r['uneven_raw']} / {r['uneven_chain']} | {r['chain']:.1f} | "
            f"{r['s']:.1f} | {r['twice']:.2f} | {r['negative']:.2f} | {r['r']:.1f} | "
            f"{change:+.2f} % | {r['r_not_s']:.1f} ({100 * r['r_not_s'] / r['s']:.1f} %) | "
            f"{r['s_not_r']:.1f} ({100 * r['s_not_r'] / r['s']:.1f} %) |"
        )
    lines += ["", "Volume change of each repair action [um^3] (count in brackets):", ""]
    for r in rows:
        parts = ", ".join(f"{k} ({n}) {v:+.2f}" for k, n, v in r["actions"])
        lines.append(f"* {r['cell']} (repair {r['seconds']:.0f} s): {parts}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", default=",".join(NAVIS_IDS))
    parser.add_argument("--cube-um", type=float, default=2.0)
    parser.add_argument("--per-cube", type=int, default=1000)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/repair_volume.md")
    args = parser.parse_args()
    rows = []
    for cell in args.cells.split(","):
        rows.append(measure(cell, args.cube_um, args.per_cube))
        print(rows[-1], flush=True)
        args.output.write_text(_table(rows, args))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
