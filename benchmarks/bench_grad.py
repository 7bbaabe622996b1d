"""Forward/backward cost of the differentiable mesh eigenbasis versus mesh size.

For tetrahedral meshes of an ellipsoid-mapped cube (irregular: nodes randomly perturbed)
of increasing size, time ``differentiable_mesh_eigendata`` (forward: assembly, eigen-solve,
reduced data) and the backward of a loss touching every output (eigenvalues, all moment
matrices, mode integrals, volume), and record the peak resident memory of each case (run
in its own subprocess).  Writes benchmarks/results/grad.md.

Usage: python benchmarks/bench_grad.py [--sizes 10 16 22 28] [--modes 50] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _mesh(points_per_side: int):
    """Kuhn (Freudenthal) tetrahedra of a structured cube, 6 per hex, nodes perturbed by
    10% of the spacing, mapped to a 5 x 4 x 3 um box (numpy only, no scikit-fem)."""
    import itertools

    import numpy as np

    n = points_per_side
    grid = np.linspace(-1.0, 1.0, n)
    x = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    index = np.arange(n**3).reshape(n, n, n)
    corner = index[:-1, :-1, :-1].reshape(-1)
    step = np.array([n * n, n, 1])
    tets = []
    for perm in itertools.permutations(range(3)):
        a = step[perm[0]]
        b = a + step[perm[1]]
        tets.append(np.stack([corner, corner + a, corner + b, corner + step.sum()], 1))
    rng = np.random.default_rng(0)
    x = x + 0.1 * (2.0 / (n - 1)) * rng.standard_normal(x.shape)
    return x * np.array([5e-6, 4e-6, 3e-6]), np.concatenate(tets)


def _run_case(points_per_side: int, num_modes: int) -> dict:
    """One measurement in this process (called in a fresh subprocess)."""
    import torch

    sys.path.insert(0, str(ROOT))
    from mf_dmri.fem.differentiable import differentiable_mesh_eigendata

    iterations: list[int] = []

    class _Counter(logging.Handler):
        def emit(self, record):
            if "converged in" in record.getMessage():
                iterations.append(int(record.args[0]))

    log = logging.getLogger("mf_dmri.fem.mode_set")
    log.setLevel(logging.DEBUG)
    log.addHandler(_Counter())
    nodes_np, elements = _mesh(points_per_side)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    nodes = torch.tensor(nodes_np, requires_grad=True)
    start = time.perf_counter()
    data = differentiable_mesh_eigendata(nodes, elements, num_modes=num_modes)
    forward = time.perf_counter() - start
    basis = data.eigenbasis
    loss = (
        (basis.eigenvalues / basis.eigenvalues[-1]).sum()
        + (basis.moments**2).sum() * 1e10
        + (basis.mode_integrals**2).sum() / basis.volume
        + (data.coupling**2).sum()
    )
    start = time.perf_counter()
    loss.backward()
    backward = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "nodes": int(nodes.shape[0]),
        "elements": int(elements.shape[0]),
        "modes": basis.num_modes,
        "forward_s": forward,
        "backward_s": backward,
        "cg_iterations": iterations[0] if iterations else 0,
        "peak_rss_mb": peak / 1024,
        "rss_growth_mb": (peak - base_rss) / 1024,
    }


def _table(rows: list[dict]) -> str:
    head = (
        "| nodes | tets | modes | forward [s] | backward [s] | backward/forward | "
        "CG iterations | peak RSS [MB] | RSS growth [MB] |\n" + "|---" * 9 + "|"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['nodes']} | {r['elements']} | {r['modes']} | {r['forward_s']:.2f} | "
            f"{r['backward_s']:.2f} | {r['backward_s'] / r['forward_s']:.2f} | "
            f"{r['cg_iterations']} | {r['peak_rss_mb']:.0f} | {r['rss_growth_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[10, 16, 22, 28],
        help="points per cube side (N = side^3 nodes)",
    )
    parser.add_argument("--modes", type=int, nargs="+", default=[50])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/grad.md")
    parser.add_argument("--case", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(_run_case(*args.case)))
        return
    rows = []
    for modes in args.modes:
        for side in args.sizes:
            out = subprocess.run(
                [sys.executable, __file__, "--case", str(side), str(modes)],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"N={row['nodes']:6d} L={row['modes']:4d} forward {row['forward_s']:7.2f} s "
                f"backward {row['backward_s']:7.2f} s ratio "
                f"{row['backward_s'] / row['forward_s']:.2f} CG {row['cg_iterations']} "
                f"peak RSS {row['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    load = os.getloadavg()[0]
    text = (
        f"# Differentiable eigenbasis: forward and backward cost\n\n"
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"OPENBLAS_NUM_THREADS={threads}, load average {load:.1f} at the end (timings on a "
        f"shared machine are noisy).  Mesh: perturbed tetrahedral box "
        f"(5 x 4 x 3 um); loss touches eigenvalues, moments, mode integrals, volume "
        f"and coupling.  Forward = assembly + eigen-solve (LU of K - sigma M, ARPACK) + "
        f"reduced data; backward = adjoint incl. one projected shifted CG solve per "
        f"mode (block, preconditioned by the same LU).\n\n{_table(rows)}\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
