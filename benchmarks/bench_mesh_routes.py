"""Which volume-meshing route wins on real neuron surfaces: the five navis example meshes
(``navis.example_neurons(kind="mesh")``, 8 nm voxel units) are repaired
(``repair_surface(keep_largest=True)``) and tetrahedralised with netgen (thickness
sizing), TetGen and fTetWild, each under a wall-time budget (a child process killed when
it is spent).  Per mesh: triangles, repair time, bodies, volume change; per route: time,
tets, min dihedral, volume error against the repaired surface, or the error a user sees.
Prints a table and writes benchmarks/results/mesh_routes.md.

    OMP_NUM_THREADS=1 python benchmarks/bench_mesh_routes.py [--budget 120] [--only ID]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mf_dmri import units  # noqa: E402
from mf_dmri.geometry import SurfaceMesh, repair_surface, tetrahedralize  # noqa: E402

ROUTES = {
    "netgen": {"method": "netgen", "thin_part_cells": 3.0},
    "tetgen": {"method": "tetgen", "thin_part_cells": None},
    "tetwild": {
        "method": "tetwild",
        "thin_part_cells": None,
        "envelope": 0.02 * units.um,
        "tetwild_options": {"num_threads": 1, "num_opt_iter": 20, "stop_energy": 20.0},
    },
}


def repaired(neuron) -> tuple[SurfaceMesh, dict]:
    surface = SurfaceMesh(np.asarray(neuron.vertices, float) * 8 * units.nm, neuron.faces)
    start = time.perf_counter()
    cell, report = repair_surface(surface, keep_largest=True)
    seconds = time.perf_counter() - start
    dropped = -sum(a.volume_change for a in report.actions if a.kind == "dropped_bodies")
    row = {
        "triangles": surface.n_faces,
        "repair_s": seconds,
        "actions": sum(a.count for a in report.actions if a.kind != "dropped_bodies"),
        "bodies": 1 + report.count("dropped_bodies"),
        "largest": report.volume_after / (report.volume_after + dropped),
        "dV": (report.volume_after + dropped - report.volume_before) / report.volume_before,
        "cell_faces": cell.n_faces,
    }
    return cell, row


def mesh(cell: SurfaceMesh, route: str, budget: float) -> dict:
    start = time.perf_counter()
    cpu = time.process_time()
    try:
        result = tetrahedralize(cell, time_budget=budget, **ROUTES[route])
    except Exception as exc:  # the benchmark records what a user sees
        message = f"{type(exc).__name__}: {exc}".replace("|", "/").replace("\n", " ")
        return {"error": message[:160], "wall_s": time.perf_counter() - start}
    quality = result.quality
    return {
        "wall_s": time.perf_counter() - start,
        "cpu_s": time.process_time() - cpu,
        "tets": result.n_elements,
        "min_dihedral": quality.min_dihedral,
        "volume_error": quality.volume_error,
    }


def main() -> None:
    import navis

    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per route")
    parser.add_argument("--only", type=int, default=None, help="one neuron id")
    args = parser.parse_args()
    lines = [
        "# Meshing routes on real neurons (navis example meshes)",
        "",
        f"`python benchmarks/bench_mesh_routes.py --budget {args.budget:g}`; "
        f"{platform.node()}, {os.cpu_count()} cores shared with other jobs, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}.  Repair: "
        "`repair_surface`; bodies/largest: the repaired surface's bodies and the largest "
        "one's share of the volume (the cell meshed is the largest, `keep_largest=True`); "
        "dV: volume change of the repair against the input's solid volume.  Routes: "
        "netgen with thickness sizing (thin_part_cells=3), TetGen (-q1.4/15), fTetWild "
        "(envelope 0.02 um, 20 optimisation passes, stop energy 20, one thread); each "
        f"under a {args.budget:g} s wall-time budget.  Wall times include the child "
        "process start; volume error against the repaired surface.",
        "",
        "| neuron | triangles | repair [s] | actions | bodies | largest | dV | route | "
        "wall [s] | tets | min dihedral [deg] | volume error |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for neuron in navis.example_neurons(kind="mesh"):
        if args.only is not None and int(neuron.id) != args.only:
            continue
        cell, row = repaired(neuron)
        head = (
            f"| {neuron.id} | {row['triangles']} | {row['repair_s']:.1f} | {row['actions']} | "
            f"{row['bodies']} | {100 * row['largest']:.2f} % | {100 * row['dV']:+.2f} % |"
        )
        for route in ROUTES:
            result = mesh(cell, route, args.budget)
            if "error" in result:
                tail = f" {route} | {result['wall_s']:.1f} | FAILED: {result['error']} | | |"
            else:
                tail = (
                    f" {route} | {result['wall_s']:.1f} | {result['tets']} | "
                    f"{result['min_dihedral']:.2f} | {result['volume_error']:.1e} |"
                )
            lines.append(head + tail)
            print(lines[-1], flush=True)
            head = "| | | | | | | |"
    out = ROOT / "benchmarks" / "results" / "mesh_routes.md"
    if args.only is None:
        out.write_text("\n".join(lines) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
