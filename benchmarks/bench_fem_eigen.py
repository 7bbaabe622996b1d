"""Benchmark of the FEM Neumann eigenbasis: solver comparison and scaling with mesh size.

Usage: python benchmarks/bench_fem_eigen.py [--max-nodes 100000] [--budget 600]

1. Solver comparison (3-D cube meshes, cutoff fixed in physical units): dense LAPACK,
   shift-invert ARPACK (with inertia check) and AMG-preconditioned LOBPCG; wall time and the
   largest relative eigenvalue difference to the reference (dense, else shift-invert).
2. Scaling: solver="auto" on cube meshes of 1e3 .. max-nodes nodes, each in a fresh
   subprocess (peak resident memory from resource.getrusage), and the fitted exponents
   t ~ N^a, memory ~ N^b.
Results go to benchmarks/results/fem_eigen.md and fem_eigen.csv.  Thread counts follow the
environment (set OPENBLAS_NUM_THREADS to the cores you mean to measure).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIDE = 10e-6  # cube side [m]
CUTOFF = 11.5 * (np.pi / SIDE) ** 2  # about 38 modes of the cube [1/m^2]


def cube_system(cells: int, order: int = 1):
    from skfem import MeshTet

    from mf_dmri.fem import assemble_mesh

    grid = np.linspace(0.0, SIDE, cells + 1)
    return assemble_mesh(MeshTet.init_tensor(grid, grid, grid), order=order)


def one_run(cells: int, solver: str) -> dict:
    """Assemble + solve once; returns times [s], sizes and the eigenvalues."""
    from mf_dmri.fem import solve_eigenbasis

    start = time.perf_counter()
    system = cube_system(cells)
    assembled = time.perf_counter()
    result = solve_eigenbasis(system, max_eigenvalue=CUTOFF, solver=solver)
    done = time.perf_counter()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "cells": cells,
        "nodes": system.num_dofs,
        "solver": result.solver,
        "modes": result.basis.num_modes,
        "assembly_s": assembled - start,
        "solve_s": done - assembled,
        "peak_mib": peak_kib / 1024,
        "max_residual": float(result.residuals.max()),
        "eigenvalues": result.basis.eigenvalues.tolist(),
    }


def in_subprocess(cells: int, solver: str, timeout: float) -> dict | None:
    command = [sys.executable, __file__, "--one", str(cells), solver]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as exc:
        print(exc.stderr[-2000:])
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def relative_difference(a: list, b: list) -> float:
    a, b = np.asarray(a), np.asarray(b)
    if a.size != b.size:
        return float("nan")
    return float(np.abs(a[1:] - b[1:]).max() / b[-1])


def compare_solvers(budget: float) -> list[dict]:
    rows = []
    for cells in (10, 14, 20):
        runs = {}
        for solver in ("dense", "shift-invert", "lobpcg"):
            if solver == "dense" and cells > 14:
                continue
            runs[solver] = in_subprocess(cells, solver, budget)
        reference = runs.get("dense") or runs.get("shift-invert")
        for solver, run in runs.items():
            if run is None:
                rows.append({"cells": cells, "solver": solver, "solve_s": "timeout"})
                continue
            run["max_rel_diff_to_reference"] = relative_difference(
                run["eigenvalues"], reference["eigenvalues"]
            )
            rows.append(run)
            print(
                f"compare {solver:13s} N={run['nodes']:7d} modes={run['modes']:3d} "
                f"solve={run['solve_s']:8.2f}s diff={run['max_rel_diff_to_reference']:.1e} "
                f"res={run['max_residual']:.1e}",
                flush=True,
            )
    return rows


def scaling(max_nodes: int, budget: float) -> list[dict]:
    rows = []
    for cells in (10, 14, 20, 28, 36, 46):
        if (cells + 1) ** 3 > max_nodes:
            break
        run = in_subprocess(cells, "auto", budget)
        if run is None:
            print(f"scaling N={(cells + 1) ** 3}: timed out after {budget:.0f}s")
            break
        rows.append(run)
        print(
            f"scaling N={run['nodes']:7d} solver={run['solver']:13s} modes={run['modes']} "
            f"assembly={run['assembly_s']:.2f}s solve={run['solve_s']:.2f}s "
            f"peak={run['peak_mib']:.0f}MiB",
            flush=True,
        )
    return rows


def fitted_exponent(rows: list[dict], key: str) -> float:
    usable = [r for r in rows if r["solver"] == "shift-invert"]
    if len(usable) < 2:
        return float("nan")
    return float(
        np.polyfit(np.log([r["nodes"] for r in usable]), np.log([r[key] for r in usable]), 1)[0]
    )


def write_results(comparison: list[dict], scale: list[dict]) -> None:
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    fields = [
        "table",
        "nodes",
        "solver",
        "modes",
        "assembly_s",
        "solve_s",
        "peak_mib",
        "max_residual",
        "max_rel_diff_to_reference",
    ]
    with open(out / "fem_eigen.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for table, rows in (("compare", comparison), ("scaling", scale)):
            for row in rows:
                writer.writerow({"table": table, **row})
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    lines = [
        "# FEM eigenbasis benchmark",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
        f"visible, OPENBLAS_NUM_THREADS={threads}.  Cube of side 10 um, P1 tetrahedra, "
        f"cutoff {CUTOFF:.3g} 1/m^2.",
        "",
        "## Solver comparison",
        "",
        "| nodes | solver | modes | solve [s] | max rel. eigenvalue diff | max residual |",
        "|---|---|---|---|---|---|",
    ]
    for r in comparison:
        if r.get("solve_s") == "timeout":
            lines.append(f"| cells={r['cells']} | {r['solver']} | | timeout | | |")
            continue
        lines.append(
            f"| {r['nodes']} | {r['solver']} | {r['modes']} | {r['solve_s']:.2f} | "
            f"{r['max_rel_diff_to_reference']:.1e} | {r['max_residual']:.1e} |"
        )
    lines += [
        "",
        "## Scaling (solver=auto)",
        "",
        "| nodes | solver | modes | assembly [s] | solve [s] | peak RSS [MiB] |",
        "|---|---|---|---|---|---|",
    ]
    for r in scale:
        lines.append(
            f"| {r['nodes']} | {r['solver']} | {r['modes']} | {r['assembly_s']:.2f} "
            f"| {r['solve_s']:.2f} | {r['peak_mib']:.0f} |"
        )
    lines += [
        "",
        f"Fitted exponents (shift-invert rows): solve time ~ N^"
        f"{fitted_exponent(scale, 'solve_s'):.2f}, peak memory ~ N^"
        f"{fitted_exponent(scale, 'peak_mib'):.2f} (RSS includes the ~300 MiB of "
        "Python + torch + scipy).",
    ]
    (out / "fem_eigen.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-nodes", type=int, default=100_000)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--one", nargs=2, metavar=("CELLS", "SOLVER"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(int(args.one[0]), args.one[1])))
        return
    comparison = compare_solvers(args.budget)
    write_results(comparison, scaling(args.max_nodes, args.budget))


if __name__ == "__main__":
    main()
