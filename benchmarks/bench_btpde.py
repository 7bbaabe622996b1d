"""Wall time of the matrix formalism (MF) and of the BTPDE solver for the same accuracy on
the same finite-element mesh.

For each mesh and protocol, the reference is the BTPDE with Gauss-Legendre at a small step.
The MF is timed at the smallest cutoff (from ell = 5, 4, 3, 2, 1.5, 1 um) whose error is
<= the target (default 1e-4), as eigen-solve (sparse shift-invert, the production path)
plus signal; each BTPDE scheme at the largest step (from 4 ms halving down) that reaches
the target.  Writes benchmarks/results/btpde.md and prints the table.

Usage: OPENBLAS_NUM_THREADS=1 python benchmarks/bench_btpde.py [--target 1e-4]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mf_dmri import units
from mf_dmri.fem import assemble_mesh, mesh_eigenbasis
from mf_dmri.fem.bloch_torrey import impermeable_operator
from mf_dmri.geometry import generators, tetrahedralize
from mf_dmri.geometry.neuron import NeuronSkeleton, neuron_surface
from mf_dmri.sequences import OGSE, PGSE, Acquisition, fibonacci_sphere
from mf_dmri.signal import Compartment, signal
from mf_dmri.signal.btpde import btpde_solve, steps_per_piece

um, ms, D = units.um, units.ms, 2e-9
LENGTH_SCALES = [5.0, 4.0, 3.0, 2.0, 1.5, 1.0]  # [um]
SCHEMES = ("crank-nicolson", "radau-iia", "gauss-legendre")


def meshes() -> dict:
    skeleton = NeuronSkeleton(
        4 * um,
        starts=[[3 * um, 0, 0], [-1.5 * um, 2.5 * um, 0]],
        ends=[[16 * um, 0.5 * um, 0.3 * um], [-8 * um, 12 * um, 1 * um]],
        radii=[1 * um, 1 * um],
    )
    surfaces = {
        "sphere R 5 um": generators.sphere(5 * um, subdivisions=3),
        "neuron": neuron_surface(skeleton, segments=10),
    }
    return {k: tetrahedralize(s, thin_part_cells=None) for k, s in surfaces.items()}


def protocols() -> dict:
    directions = fibonacci_sphere(15, hemisphere=True)
    shell = torch.full((15,), 3000.0) * units.s_per_mm2
    pgse, ogse = PGSE(10 * ms, 30 * ms), OGSE(10 * ms, 20 * ms, 2, "cos")
    return {
        "PGSE b=3000, 15 dirs": Acquisition.from_bvalues(pgse, shell, directions).pieces(),
        "OGSE b=3000, 15 dirs": Acquisition.from_bvalues(ogse, shell, directions).pieces(
            5 * ms / 16
        ),
    }


def timed_mf(mesh, pieces, reference, target):
    for ell in LENGTH_SCALES:
        lam = (2 * np.pi / (ell * um)) ** 2
        start = time.perf_counter()
        basis = mesh_eigenbasis(mesh.nodes, mesh.elements, max_eigenvalue=lam, order=1)
        solved = time.perf_counter()
        value = signal(Compartment(basis, D), pieces).numpy()
        done = time.perf_counter()
        error = np.abs(value - reference).max()
        if error <= target:
            return ell, basis.num_modes, error, solved - start, done - solved
    return None


def timed_btpde(operator, pieces, reference, target, scheme):
    step, previous = 4 * ms, None
    durations = pieces.durations.numpy()
    while step > 1e-5:
        counts = steps_per_piece(durations, step)
        if previous is not None and np.array_equal(counts, previous):
            step /= 2  # same steps on every piece as the last try
            continue
        previous = counts
        result = btpde_solve(operator, pieces, time_step=step, scheme=scheme)
        error = np.abs(result.signal.numpy() - reference).max()
        if error <= target:
            return step, error, result
        step /= 2
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", type=float, default=1e-4, help="absolute accuracy")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()
    rows = []
    for mesh_name, mesh in meshes().items():
        operator = impermeable_operator(
            list(assemble_mesh(mesh.nodes, mesh.elements, order=1).pieces), D
        )
        for protocol_name, pieces in protocols().items():
            fine_step = 5e-5 if protocol_name.startswith("OGSE") else 2.5e-4
            reference = btpde_solve(
                operator, pieces, time_step=fine_step, scheme="gauss-legendre"
            ).signal.numpy()
            label = f"{mesh_name} ({operator.num_dofs} nodes), {protocol_name}"
            mf = timed_mf(mesh, pieces, reference, args.target)
            if mf is not None:
                ell, modes, error, eigen_s, signal_s = mf
                rows.append(
                    f"| {label} | MF ell={ell:g} um, {modes} modes | {error:.1e} | "
                    f"{eigen_s + signal_s:.2f} (eigen {eigen_s:.2f} + signal {signal_s:.2f}) |"
                )
            for scheme in SCHEMES:
                found = timed_btpde(operator, pieces, reference, args.target, scheme)
                if found is None:
                    rows.append(f"| {label} | BTPDE {scheme}: target not reached | | |")
                    continue
                step, error, result = found
                rows.append(
                    f"| {label} | BTPDE {scheme}, step {step * 1e3:.3g} ms, "
                    f"{result.num_factorizations} LU | {error:.1e} | {result.wall_time:.2f} "
                    f"(LU {result.factorization_time:.2f}) |"
                )
            print("\n".join(rows[-4:]), flush=True)
    lines = [
        "# MF vs BTPDE: wall time for the same accuracy",
        "",
        f"Generated by `python benchmarks/bench_btpde.py --target {args.target:g}` on "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, 1 thread "
        f"(OPENBLAS/OMP/MKL/torch), load average at start {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} (1/5/15 min) on a machine shared with other jobs: absolute times "
        "are inflated, ratios are indicative.",
        "",
        f"Accuracy: max |E - E_ref| over the measurements <= {args.target:g}; E_ref is the "
        "BTPDE (Gauss-Legendre) at 0.25 ms (PGSE) or 0.05 ms (OGSE).  MF time includes its "
        "eigen-solve (sparse shift-invert up to the cutoff).  D = 2 um^2/ms.  A BTPDE step "
        "is capped by the piece length (OGSE: 0.3125 ms pieces, so a step >= 0.3125 ms is "
        "one step per piece); `LU` counts its sparse factorisations.",
        "",
        "| case | engine | error | wall time [s] |",
        "|---|---|---|---|",
        *rows,
        "",
    ]
    output = Path(__file__).parent / "results" / "btpde.md"
    output.write_text("\n".join(lines))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
