"""Benchmark of the FEM eigen-solve: the project's solver against the previous one, same matrices.

Usage: python benchmarks/bench_fem_eigen.py [--cases small,24k,50k,100k,neuron] [--budget 3600]
       [--runs-from run.json ...] [--superlu] [--note TEXT]

``--runs-from`` takes the JSON lines that ``--one CASE SOLVER`` printed (runs started earlier
in the same session, e.g. in the background side by side: the previous solver takes ~27 min
at 1e5 nodes) instead of running those (case, solver) pairs again; the table marks the cases.

Each case assembles one mesh piece and computes every Neumann mode below a cutoff twice, in
fresh subprocesses (peak resident memory from resource.getrusage): with
``mf_dmri.fem.eigensolver.lowest_spectrum`` (inertia-counted slices, shift-invert block
Lanczos, multi-right-hand-side solves; its default factorisation backend: MKL PARDISO when the
``pardiso`` extra is installed, else METIS-ordered SuperLU) and with the solver it replaced
(kept here only, for this comparison: ARPACK ``eigsh`` in shift-invert mode on SuperLU with
its own minimum-degree ordering, one inertia count at the threshold, spectrum slices of 400).
With ``--superlu`` (or a ``superlu`` run in ``--runs-from``) the project's solver forced onto
SuperLU (``ShiftInvertLanczos(factorisation="superlu")``) is timed too, as a third column.
Cases: cubes of side 10 um with ~1e3, 2.4e4, 5e4 and 1e5 nodes and ~200 modes, and the
generated neuron (mf_dmri.geometry.neuron_occ, ~1.7e4 nodes) with ~1,400 modes.  Written to
benchmarks/results/fem_eigen.md and fem_eigen.csv; set OPENBLAS_NUM_THREADS=1 for one core.
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
import scipy.sparse.linalg as sla

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIDE = 10e-6  # cube side [m]
CUBE_CUTOFF = 48.3 * (np.pi / SIDE) ** 2  # ~200 modes of the cube [1/m^2]
CASES = {"small": 10, "24k": 28, "50k": 36, "100k": 46, "neuron": None}


def piece(case: str):
    """The assembled matrices of the case and its cutoff [1/m^2]."""
    from mf_dmri.fem import assemble_mesh

    if case == "neuron":
        from mf_dmri import units
        from mf_dmri.geometry import neuron_skeleton
        from mf_dmri.geometry.neuron_occ import neuron_volume_mesh

        skeleton = neuron_skeleton(seed=1, n_neurites=4, branch_levels=1)
        mesh = neuron_volume_mesh(skeleton, max_edge=0.7 * units.um)
        return assemble_mesh(mesh.nodes, mesh.elements, order=1).pieces[0], (
            2 * np.pi / 1.15e-6
        ) ** 2
    from skfem import MeshTet

    grid = np.linspace(0.0, SIDE, CASES[case] + 1)
    return assemble_mesh(MeshTet.init_tensor(grid, grid, grid), order=1).pieces[0], CUBE_CUTOFF


def previous_solver(stiffness, mass, threshold: float, chunk: int = 400) -> np.ndarray:
    """Eigenvalues below ``threshold`` by the replaced solver (see the module docstring)."""

    def factor(shift):
        return sla.splu(
            (stiffness - shift * mass).tocsc(),
            permc_spec="MMD_AT_PLUS_A",
            diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        )

    def count(shift):
        return int((factor(shift).U.diagonal() < 0).sum())

    total, size, lower, done, values = count(threshold), stiffness.shape[0], 0.0, 0, []
    while done < total:
        upper, upper_count = threshold, total
        if total - done > chunk:
            upper = threshold * ((done + chunk) / total) ** (2.0 / 3.0)
            upper_count = count(upper)
        sigma = -1e-3 * threshold if done == 0 else 0.5 * (lower + upper)
        lu = factor(sigma)
        k = min(upper_count - done + max(6, (upper_count - done) // 10), size - 2)
        operator = sla.LinearOperator(stiffness.shape, matvec=lu.solve, dtype=np.float64)
        found = sla.eigsh(
            stiffness,
            k=k,
            M=mass,
            sigma=sigma,
            OPinv=operator,
            which="LM",
            ncv=min(size - 1, max(2 * k + 1, k + 32)),
            return_eigenvectors=False,
        )
        keep = np.sort(found[(found >= (lower if done else -1.0)) & (found < upper)])
        if keep.size != upper_count - done:
            raise RuntimeError("previous solver: count mismatch")
        values.append(keep)
        lower, done = upper, upper_count
    return np.concatenate(values)


def one_run(case: str, which: str) -> dict:
    """One solve: ``which`` is "new" (the project's solver, default factorisation backend),
    "superlu" (the project's solver forced onto SuperLU) or "old" (the replaced solver)."""
    from mf_dmri.fem.eigensolver import ShiftInvertLanczos, lowest_spectrum
    from mf_dmri.fem.sparse_factor import resolve_backend

    system, cutoff = piece(case)
    backend = {"new": "auto", "superlu": "superlu"}.get(which)
    start, cpu = time.perf_counter(), time.process_time()
    if backend is not None:
        constant = np.full((system.num_dofs, 1), 1.0 / np.sqrt(system.volume))
        solver = ShiftInvertLanczos(factorisation=backend)
        found = lowest_spectrum(
            system.stiffness, system.mass, cutoff, deflation=constant, dimension=3, solver=solver
        )
        values, stats = found.eigenvalues, found.stats
        backend = resolve_backend(backend)
    else:
        values, stats = previous_solver(system.stiffness, system.mass, cutoff), {}
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "case": case,
        "solver": which,
        "backend": backend or "superlu (ARPACK)",
        "nodes": system.num_dofs,
        "modes": int(values.size),
        "solve_s": seconds,
        "cpu_s": cpu,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "eigenvalues": values.tolist(),
        "stats": {k: round(float(v), 3) for k, v in stats.items()},
    }


def in_subprocess(case: str, which: str, timeout: float) -> dict | None:
    command = [sys.executable, __file__, "--one", case, which]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as exc:
        print(exc.stderr[-2000:])
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_results(rows: list[dict], note: str) -> None:
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    fields = [
        "case",
        "nodes",
        "modes",
        "new_s",
        "old_s",
        "speedup",
        "new_cpu_s",
        "old_cpu_s",
        "cpu_speedup",
        "superlu_cpu_s",
        "new_mib",
        "old_mib",
        "max_rel_eigenvalue_diff",
    ]
    with open(out / "fem_eigen.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    lines = [
        "# FEM eigen-solve: the block-Lanczos solver vs the previous ARPACK solver",
        "",
        f"Generated by `python benchmarks/bench_fem_eigen.py` on {platform.machine()}, "
        f"{os.cpu_count()} CPUs visible, OPENBLAS_NUM_THREADS={threads}; each run in a fresh "
        "process, both solvers on the same matrices in the same invocation (the machine is "
        "shared with other jobs: absolute times are inflated, ratios are the figure; the CPU "
        "time of the single-threaded process is the fairer measure when the load changes "
        "during a run).",
        "",
        "| case | nodes | modes | new [s] | previous [s] | speed-up | new CPU [s] "
        "| previous CPU [s] | CPU speed-up | new on SuperLU CPU [s] | new peak [MiB] "
        "| previous peak [MiB] | max rel. eigenvalue diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['nodes']} | {r['modes']} | {r['new_s']} | {r['old_s']} | "
            f"{r['speedup']} | {r['new_cpu_s']} | {r['old_cpu_s']} | {r['cpu_speedup']} | "
            f"{r['superlu_cpu_s']} | {r['new_mib']} | {r['old_mib']} | "
            f"{r['max_rel_eigenvalue_diff']} |"
        )
    lines += ["", "New solver's counters and step times [s] per case:", ""]
    lines += [f"- {r['case']} ({r['backend']}): {r['new_stats']}" for r in rows]
    if any(r["case"].endswith("*") for r in rows):
        lines += [
            "",
            "\\* runs of these cases were separate processes (`--one CASE SOLVER`) started "
            "side by side in the same session and passed with `--runs-from`.",
        ]
    if note:
        lines += ["", note]
    (out / "fem_eigen.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def _cpu(run: dict | None) -> float | None:
    """CPU time [s] of a run (None when it did not finish or predates the CPU column)."""
    return None if run is None else run.get("cpu_s")


def _fmt(value, digits=1):
    return "timeout" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", default="small,24k,50k,100k,neuron")
    parser.add_argument("--budget", type=float, default=3600.0, help="seconds per run")
    parser.add_argument("--one", nargs=2, metavar=("CASE", "SOLVER"))
    parser.add_argument("--runs-from", nargs="*", default=[], help="--one CASE SOLVER outputs")
    parser.add_argument("--superlu", action="store_true", help="also the solver on SuperLU")
    parser.add_argument("--note", default="", help="conditions of the run, written to the file")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(*args.one)))
        return
    rows = []
    earlier = [json.loads(Path(f).read_text().strip().splitlines()[-1]) for f in args.runs_from]

    def run(case: str, which: str) -> dict | None:
        found = [r for r in earlier if r["case"] == case and r["solver"] == which]
        return found[0] if found else in_subprocess(case, which, args.budget)

    for case in args.cases.split(","):
        new, old = run(case, "new"), run(case, "old")
        superlu = [r for r in earlier if r["case"] == case and r["solver"] == "superlu"]
        if not superlu and args.superlu:
            superlu = [in_subprocess(case, "superlu", args.budget)]
        superlu = superlu[0] if superlu else None
        reused = any(r in earlier for r in (new, old, superlu))
        diff = None
        if new and old and new["modes"] == old["modes"]:
            a, b = np.asarray(new["eigenvalues"]), np.asarray(old["eigenvalues"])
            diff = float(np.abs(a - b).max() / b[-1])
        rows.append(
            {
                "case": case + ("*" if reused else ""),
                "nodes": (new or old or {}).get("nodes", "?"),
                "modes": (new or old or {}).get("modes", "?"),
                "new_s": _fmt(new and new["solve_s"]),
                "old_s": _fmt(old and old["solve_s"]),
                "speedup": _fmt(new and old and old["solve_s"] / new["solve_s"], 2),
                "new_cpu_s": _fmt(_cpu(new)),
                "old_cpu_s": _fmt(_cpu(old)),
                "cpu_speedup": _fmt(_cpu(new) and _cpu(old) and _cpu(old) / _cpu(new), 2),
                "superlu_cpu_s": _fmt(_cpu(superlu)) if superlu or args.superlu else "not run",
                "new_mib": _fmt(new and new["peak_mib"], 0),
                "old_mib": _fmt(old and old["peak_mib"], 0),
                "max_rel_eigenvalue_diff": "n/a" if diff is None else f"{diff:.1e}",
                "new_stats": new and new["stats"],
                "backend": (new or {}).get("backend", "?"),
            }
        )
        write_results(rows, args.note)


if __name__ == "__main__":
    main()
