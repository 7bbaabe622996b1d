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


def _pgse_acquisition(bvalues, timings, num_directions):
    """One PGSE acquisition per timing (delta, Delta) [s]: every b-value [s/m^2] in the same
    ``num_directions`` random directions."""
    import numpy as np
    import torch

    from mf_dmri.sequences import PGSE, Acquisition

    rng = np.random.default_rng(0)
    directions = torch.tensor(rng.normal(size=(num_directions, 3)))
    directions = directions / directions.norm(dim=1, keepdim=True)
    bvalues = torch.tensor(bvalues, dtype=torch.float64).repeat_interleave(num_directions)
    out = []
    for delta, big_delta in timings:
        # b = gamma^2 g^2 delta^2 (Delta - delta / 3)
        amplitudes = (bvalues / (2.6752218744e8**2 * delta**2 * (big_delta - delta / 3))) ** 0.5
        tiled = directions.repeat(len(bvalues) // num_directions, 1)
        out.append(Acquisition(PGSE(delta, big_delta), tiled, amplitudes))
    return out


#: The propagators compared by --signal, in the order run: dense matrix exponentials (the
#: path of the issue's 35 s pass), polynomial Krylov actions, shift-and-invert Krylov actions.
SIGNAL_PATHS = ("dense", "krylov", "shift_invert")


def _run_signal_case(kind: str, size: int) -> dict:
    """Vertex gradient of a signal loss: forward (eigenbasis + signals) and backward, with
    each propagator of ``SIGNAL_PATHS`` in this one process."""
    import torch

    sys.path.insert(0, str(ROOT))
    from mf_dmri.fem.differentiable import differentiable_mesh_eigenbasis
    from mf_dmri.signal import (
        Compartment,
        DenseExponential,
        KrylovExponential,
        ShiftInvertExponential,
        signal,
    )

    if kind == "remidi":
        from mf_dmri.geometry import cylinder, tetrahedralize

        mesh = tetrahedralize(cylinder(2e-6, 10e-6, segments=16), length_scale=0.9e-6)
        nodes_np, elements, modes = mesh.nodes, mesh.elements, 87
        bvalues = [i * 150e6 for i in range(21)]  # 0 .. 3000 s/mm^2
        timings = [(10e-3, 20e-3), (10e-3, 40e-3), (10e-3, 60e-3)]
        acquisitions = _pgse_acquisition(bvalues, timings, 30)
    else:
        nodes_np, elements = _mesh(size)
        modes = 50
        acquisitions = _pgse_acquisition([1e9, 3e9], [(10e-3, 30e-3)], 50)
    result = {"case": kind, "nodes": int(nodes_np.shape[0]), "modes": modes}
    result["measurements"] = sum(a.num_measurements for a in acquisitions)
    propagators = {
        "dense": DenseExponential(),
        "krylov": KrylovExponential(),
        "shift_invert": ShiftInvertExponential(),
    }
    grads = {}
    for label in SIGNAL_PATHS:
        nodes = torch.tensor(nodes_np, requires_grad=True)
        start = time.perf_counter()
        basis = differentiable_mesh_eigenbasis(nodes, elements, num_modes=modes)
        cell = Compartment(basis, 2e-9)
        loss = sum(
            (signal(cell, a, propagator=propagators[label]).real ** 2).sum() for a in acquisitions
        )
        forward = time.perf_counter() - start
        start = time.perf_counter()
        loss.backward()
        backward = time.perf_counter() - start
        result[f"{label}_forward_s"], result[f"{label}_backward_s"] = forward, backward
        grads[label] = nodes.grad.clone()
    for label in ("krylov", "shift_invert"):
        difference = (grads[label] - grads["dense"]).abs().max() / grads["dense"].abs().max()
        result[f"{label}_grad_difference"] = float(difference)
    return result


def _signal_table(rows: list[dict]) -> str:
    head = (
        "| case | nodes | modes | measurements | path | forward [s] | backward [s] | "
        "backward/forward | pass [s] | dense pass / this pass | gradient difference "
        "vs dense (rel.) |\n" + "|---" * 11 + "|"
    )
    lines = [head]
    for r in rows:
        dense_pass = r["dense_forward_s"] + r["dense_backward_s"]
        for label in SIGNAL_PATHS:
            f, b = r[f"{label}_forward_s"], r[f"{label}_backward_s"]
            difference = r.get(f"{label}_grad_difference")
            shown = "-" if difference is None else f"{difference:.1e}"
            lines.append(
                f"| {r['case']} | {r['nodes']} | {r['modes']} | {r['measurements']} | {label} | "
                f"{f:.2f} | {b:.2f} | {b / f:.2f} | {f + b:.2f} | {dense_pass / (f + b):.1f} | "
                f"{shown} |"
            )
    return "\n".join(lines)


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


def _signal_main(sizes: list[int]) -> None:
    rows = []
    for kind, size in [("remidi", 0)] + [("box", side) for side in sizes]:
        out = subprocess.run(
            [sys.executable, __file__, "--signal-case", kind, str(size)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    text = (
        "# Vertex gradient of PGSE signals: dense, Krylov and shift-and-invert Krylov\n\n"
        f"`python benchmarks/bench_grad.py --signal`, {platform.machine()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average "
        f"{os.getloadavg()[0]:.1f} at the end (shared machine: absolute times inflated; "
        "the three paths run in one process per case, so their ratios are comparable).  "
        "Forward = differentiable eigenbasis + signals; backward = loss.backward() of the sum "
        "of squared signals w.r.t. the vertices; pass = forward + backward.  Paths: dense "
        "(DenseExponential, batched matrix exponentials differentiated by autograd: the "
        "issue's 35 s pass), krylov (KrylovExponential, polynomial Krylov actions), "
        "shift_invert (ShiftInvertExponential, shift-and-invert Krylov actions with the "
        "hand-written adjoint of its solves).  remidi: capped cylinder (radius 2 um, length "
        "10 um, netgen), 87 modes, 21 b-values (0..3000 s/mm^2) x 3 PGSE timings (delta 10 ms, "
        "Delta 20/40/60 ms) x 30 random directions = 1,890 measurements.  box: perturbed box "
        "mesh, 50 modes, b = 1000, 3000 s/mm^2 x 50 directions.  Gradient difference: "
        f"max |g - g_dense| / max |g_dense|.\n\n{_signal_table(rows)}\n"
    )
    out_path = ROOT / "benchmarks/results/grad_signal.md"
    out_path.write_text(text)
    print(text)


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
    parser.add_argument(
        "--signal",
        action="store_true",
        help="vertex gradient of PGSE signals (dense, Krylov, shift-and-invert): the "
        "ReMiDi-like capped cylinder (1,890 measurements) and the boxes of --sizes; writes "
        "grad_signal.md",
    )
    parser.add_argument("--signal-case", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(_run_case(*args.case)))
        return
    if args.signal_case:
        print(json.dumps(_run_signal_case(args.signal_case[0], int(args.signal_case[1]))))
        return
    if args.signal:
        _signal_main(args.sizes)
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
        f"and coupling.  Forward = assembly + eigen-solve (LU of K - sigma M, block Lanczos) + "
        f"reduced data; backward = adjoint incl. one projected shifted CG solve per "
        f"mode (block, preconditioned by the same LU).\n\n{_table(rows)}\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
