"""P1 versus P2 elements: which reaches a signal error of 1e-3 in the least time?

For each default mesh (a sphere, a finite cylinder and a generated bipolar neuron) the
same polyhedron is meshed at several resolutions (``tetrahedralize(..., length_scale=h)``
only splits surface edges at their midpoints, so the polyhedron is unchanged) and solved
with P1 and P2 elements at one eigenvalue cutoff.  Each signal (PGSE, b up to 3000
s/mm^2, three gradient directions) is compared with a reference on the same polyhedron
and at the same cutoff: P2 on the finest mesh (P2 on its uniform refinement with
``--refined``, much slower), so the error is the discretisation error alone.  Time: assembly,
eigen-solve and signal (meshing excluded, it is shared by both orders).  "Time to 1e-3":
the least time over the resolutions whose largest error is below 1e-3.

Prints a table and writes benchmarks/results/element_order.md.

    python benchmarks/bench_element_order.py             # ~20 min on 2 busy cores
    python benchmarks/bench_element_order.py --refined   # refined reference (hours)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import skfem

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mf_dmri as mf  # noqa: E402
from mf_dmri.fem import mesh_eigenbasis  # noqa: E402
from mf_dmri.geometry import bipolar_neuron, cylinder, sphere, tetrahedralize  # noqa: E402
from mf_dmri.signal.compartment import Compartment  # noqa: E402
from mf_dmri.units import ms, s_per_mm2, um, um2_per_ms  # noqa: E402

TARGET = 1e-3
#: shape -> (surface, eigen cutoff length_scale [m], tetrahedron edges tried [m]).
SHAPES = {
    "sphere": (lambda: sphere(5 * um, subdivisions=3), 2 * um, (None, 0.8 * um, 0.6 * um)),
    "cylinder": (
        lambda: cylinder(2.5 * um, 10 * um, segments=24),
        2 * um,
        (None, 0.8 * um, 0.6 * um),
    ),
    "neuron": (
        lambda: bipolar_neuron(4 * um, 1.0 * um, 0.6 * um, 30 * um, segments=12),
        2 * um,
        (None, 1.0 * um, 0.7 * um),
    ),
}


def acquisition():
    bvalues = [b * s_per_mm2 for b in (1000.0, 3000.0)]
    directions = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    waveform = mf.PGSE(10 * ms, 30 * ms)
    return mf.Acquisition.from_bvalues(
        waveform, np.repeat(bvalues, 3), np.tile(directions, (2, 1))
    ).pieces()


def solve(nodes, elements, order: int, length_scale: float, pieces):
    """(signal, seconds, modes, degrees of freedom) of one mesh and order."""
    start = time.perf_counter()
    basis = mesh_eigenbasis(nodes, elements, order=order, length_scale=length_scale)
    value = mf.signal(Compartment(basis, 2 * um2_per_ms), pieces)
    seconds = time.perf_counter() - start
    dofs = len(nodes) if order == 1 else len(nodes) + _edges(elements)
    return value.numpy(), seconds, basis.num_modes, dofs


def _edges(elements: np.ndarray) -> int:
    pairs = np.concatenate([elements[:, [i, j]] for i in range(4) for j in range(i + 1, 4)])
    return len(np.unique(np.sort(pairs, axis=1), axis=0))


def run_shape(name: str, refined: bool, pieces) -> list[dict]:
    make, length_scale, edges = SHAPES[name]
    surface = make()
    meshes = []
    for edge in edges:
        volume = tetrahedralize(surface, length_scale=edge)
        meshes.append((edge, volume.nodes, volume.elements))
    finest = meshes[-1]
    ref_nodes, ref_elements = finest[1], finest[2]
    if refined:
        mesh = skfem.MeshTet(finest[1].T, finest[2].T).refined()
        ref_nodes, ref_elements = mesh.p.T, mesh.t.T
    reference, ref_seconds, ref_modes, ref_dofs = solve(
        ref_nodes, ref_elements, 2, length_scale, pieces
    )
    print(f"{name}: reference P2 {ref_dofs} dofs {ref_modes} modes {ref_seconds:.1f} s", flush=True)
    rows = []
    for edge, nodes, elements in meshes:
        for order in (1, 2):
            if order == 2 and edge == finest[0] and not refined:
                continue  # the reference itself
            value, seconds, modes, dofs = solve(nodes, elements, order, length_scale, pieces)
            error = float(np.abs(value - reference).max())
            rows.append(
                {
                    "shape": name,
                    "edge": "surface" if edge is None else f"{edge / um:g} um",
                    "tets": len(elements),
                    "order": order,
                    "dofs": dofs,
                    "modes": modes,
                    "seconds": seconds,
                    "error": error,
                    "reference_dofs": ref_dofs,
                    "reference_seconds": ref_seconds if edge == finest[0] else None,
                }
            )
            print(
                f"  {rows[-1]['edge']:>8} P{order}: {dofs} dofs {modes} modes "
                f"{seconds:.2f} s error {error:.2e}",
                flush=True,
            )
    return rows


def time_to_target(rows: list[dict], shape: str, order: int, with_bar: bool = False) -> float:
    """Least time of ``order`` over the resolutions of ``shape`` below TARGET; with the bar
    of ``signal_with_error`` (P1 versus P2 on the same mesh) the other order's time on that
    mesh is added (the finest mesh's P2 is the reference run)."""
    times = []
    for r in rows:
        if r["shape"] != shape or r["order"] != order or r["error"] > TARGET:
            continue
        seconds = r["seconds"]
        if with_bar:
            other = [
                q["seconds"]
                for q in rows
                if q["shape"] == shape and q["edge"] == r["edge"] and q["order"] != order
            ]
            seconds += other[0] if other else r["reference_seconds"] or float("inf")
        times.append(seconds)
    return min(times) if times else float("inf")


def report(rows: list[dict], refined: bool, seconds: float) -> str:
    lines = [
        "# P1 versus P2 elements: time to a signal error of 1e-3",
        "",
        f"Generated by `python benchmarks/bench_element_order.py{' --refined' if refined else ''}`"
        f" on {platform.node() or 'this machine'} ({os.cpu_count()} cores, shared and busy:",
        "compare ratios within one run, not absolute times).  PGSE 10/30 ms, b = 1000 and",
        "3000 s/mm^2 along x, y, z, D = 2 um^2/ms, eigen cutoff length_scale 2 um.  Error: the",
        "largest |E - E_ref| over the measurements, E_ref = P2 on the "
        + ("uniformly refined finest mesh" if refined else "finest mesh")
        + " of the same polyhedron at the same cutoff (discretisation error alone).  Time:",
        "assembly + eigen-solve + signal.",
        "",
        "| shape | tet edge | tets | order | dofs | modes | time [s] | error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['edge']} | {r['tets']} | P{r['order']} | {r['dofs']} | "
            f"{r['modes']} | {r['seconds']:.2f} | {r['error']:.2e} |"
        )
    lines += [
        "",
        "Time to reach 1e-3 (least time over the resolutions below it).  `signal` alone: the",
        "solve of that order; with the bar: plus the other order on the same mesh, which",
        "`signal_with_error` solves for the discretisation error",
        "(`mf_dmri/signal/discretisation.py`; P2 on the finest mesh: the reference run).",
        "",
        "| shape | P1 [s] | P2 [s] | faster | P1 with bar [s] | P2 with bar [s] | faster |",
        "|---|---|---|---|---|---|---|",
    ]
    for shape in dict.fromkeys(r["shape"] for r in rows):
        p1, p2 = time_to_target(rows, shape, 1), time_to_target(rows, shape, 2)
        b1 = time_to_target(rows, shape, 1, with_bar=True)
        b2 = time_to_target(rows, shape, 2, with_bar=True)
        lines.append(
            f"| {shape} | {p1:.2f} | {p2:.2f} | {'P1' if p1 < p2 else 'P2'} | {b1:.2f} | "
            f"{b2:.2f} | {'P1' if b1 < b2 else 'P2'} |"
        )
    lines += ["", f"Total run time {seconds:.0f} s.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refined", action="store_true")
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES))
    args = parser.parse_args()
    pieces = acquisition()
    start = time.perf_counter()
    rows = [row for name in args.shapes for row in run_shape(name, args.refined, pieces)]
    text = report(rows, args.refined, time.perf_counter() - start)
    print(text)
    out = ROOT / "benchmarks" / "results" / "element_order.md"
    out.write_text(text)


if __name__ == "__main__":
    main()
