"""Cost of the permeable/relaxing coupled basis: mesh build, eigen-solve, backward.

Balls of radius 5 um (scikit-fem's init_ball refined 0 or 1 times, boundary projected) with
surface relaxivity and an inner ball (r < 2.5 um, label 1) with permeable membrane, D = 2 and
1 um^2/ms, kappa = 1e-5 m/s, rho = 1e-5 m/s, T2 = 60/40 ms.  Times ``permeable_mesh``,
``permeable_eigenbasis`` (forward) and the backward of the PGSE signal w.r.t. all parameters.
Writes benchmarks/results/permeable.md.

Usage: python benchmarks/bench_permeable.py [--levels 0 1] [--modes 60] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _case(level: int, modes: int) -> dict:
    import numpy as np
    import torch
    from skfem import MeshTet

    from mf_dmri.fem import PermeableParameters, permeable_eigenbasis, permeable_mesh
    from mf_dmri.sequences import PGSE, Acquisition
    from mf_dmri.signal import signal

    mesh = MeshTet.init_ball()
    for _ in range(level):
        mesh = mesh.refined()
        boundary = mesh.boundary_nodes()
        p = mesh.p.copy()
        p[:, boundary] /= np.linalg.norm(p[:, boundary], axis=0)
        mesh = MeshTet(p, mesh.t)
    nodes, elements = 5e-6 * mesh.p.T, mesh.t.T
    centres = nodes[elements].mean(axis=1)
    labels = (np.linalg.norm(centres, axis=1) < 2.5e-6).astype(np.int64)
    start = time.perf_counter()
    permeable = permeable_mesh(nodes, elements, element_labels=labels)
    built = time.perf_counter()
    leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (1e-5, 1e-5)]
    params = PermeableParameters(
        diffusivity=(2e-9, 1e-9),
        permeability=leaves[0],
        t2=(0.06, 0.04),
        surface_relaxivity=leaves[1],
    )
    basis = permeable_eigenbasis(permeable, params, num_modes=modes)
    solved = time.perf_counter()
    directions = torch.tensor([[1.0, 0.0, 0.0]] * 3, dtype=torch.float64)
    acq = Acquisition.from_bvalues(PGSE(0.01, 0.03), torch.tensor([0.0, 1e9, 3e9]), directions)
    signal(basis, acq).real.sum().backward()
    done = time.perf_counter()
    return {
        "level": level,
        "dofs": permeable.num_dofs,
        "modes": basis.num_modes,
        "mesh": built - start,
        "forward": solved - built,
        "signal+backward": done - solved,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--modes", type=int, default=60)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/permeable.md")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = [_case(level, args.modes) for level in args.levels]
    lines = [
        "# Permeable coupled basis: cost (benchmarks/bench_permeable.py)",
        "",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
        f"load {os.getloadavg()[0]:.1f} (shared machine: timings inflated), python "
        f"{sys.version.split()[0]}, 1 thread.",
        "",
        "| level | dofs | modes | permeable_mesh [s] | eigen forward [s] | signal + backward [s] |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['level']} | {r['dofs']} | {r['modes']} | {r['mesh']:.2f} | "
            f"{r['forward']:.2f} | {r['signal+backward']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
