"""Real-cell gallery: every real cell surface and skeleton obtainable from installed
packages, each end to end on one core, with time and memory per step.

Cells:
* ``mesh:<id>``: the five navis example meshes (``navis.example_neurons(kind="mesh")``,
  hemibrain EM reconstructions, 8 nm units): load -> repair_surface -> remesh_surface ->
  tetrahedralize ->
  eigenbasis -> 100 PGSE signals with their error bar (signal_with_error) -> optionally
  (``--cutoff-study``) the same signals from the basis truncated at larger length scales,
  to show which cutoff the tolerance needs.
* ``swc:<id>``: the five navis example skeletons (``navis/data/swc/*.swc``, same cells, 8 nm
  units): load_swc -> simplify_morphology (the settings below, every change counted) ->
  morphology_surface -> repair_surface (expected: no change) -> remesh_surface ->
  tetrahedralize ->
  eigenbasis -> signals.
(skeletor ships ``722817260.obj``, the same hemibrain cell as navis' 722817260; no other
installed package ships a real cell surface.)

Signals: PGSE delta 10 ms, Delta 30 ms, 100 measurements with b uniform in [0, 3000]
s/mm^2 and random directions (seed 0), D = 2e-9 m^2/s, impermeable walls.

Each cell runs in a child process (one thread: OMP_NUM_THREADS=1, torch 1 thread); the
parent kills it when one step exceeds ``--step-budget`` seconds and records the step that
failed with its error.  Peak memory: the child's maxrss after each step (cumulative, so
each row is the peak so far).  CPU time: the child's user + system time per step, its
compute on one core whatever the machine's load (wall times on a shared machine are
inflated).

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_real_cells.py [--cells swc:754534424,...]
       [--quick] [--step-budget 600] [--length-scale-um 3] [--cutoff-study 4,5,6]
       [--output PATH]
Writes benchmarks/results/real_cells.md.
"""

from __future__ import annotations

import argparse
import inspect
import json
import multiprocessing as mp
import os
import platform
import queue
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAVIS_IDS = ("1734350788", "1734350908", "722817260", "754534424", "754538881")
ALL_CELLS = tuple(f"swc:{i}" for i in NAVIS_IDS) + tuple(f"mesh:{i}" for i in NAVIS_IDS)
#: simplification of the navis skeletons (every change is reported in the table)
SWC_SETTINGS = {"min_radius_um": 0.3, "merge_tolerance_um": 0.3, "min_twig_length_um": 5.0}
#: remesh_surface settings per kind of cell (flags override them for every cell).  The
#: skeleton surfaces are round tubes of radius >= 0.3 um: one target edge across them
#: (floored at 0.5 um) keeps their discretisation error near 1e-5 (P1 vs P2 measured:
#: 1.5-2.1e-5 at 0.4 um, 1.0-3.5e-5 at 0.25 um) at half the tetrahedra; the EM surfaces'
#: thin neurites need the finer floor (their P1 vs P2 bars are already 4e-4 to 8e-3).
REMESH = {
    "mesh": {"max_edge_um": 1.0, "min_edge_um": 0.25, "cells_across": 1.5},
    "swc": {"max_edge_um": 1.5, "min_edge_um": 0.5, "cells_across": 1.0},
}


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """CPU time of this (single-threaded) process: its compute on one core, whatever the
    machine's load."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Steps:
    def __init__(self, out: mp.Queue) -> None:
        self.out = out

    def __call__(self, name: str, func):
        self.out.put(("start", name, time.time()))
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        value, info = func()
        wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
        self.out.put(("done", name, wall, _rss_mib(), info, cpu))
        return value


def _swc_surface(cell_id: str, step: _Steps, args):
    import navis

    from mf_dmri import units
    from mf_dmri.geometry import cell_parts, morphology_surface, simplify_morphology
    from mf_dmri.io.swc import load_swc

    path = Path(navis.__file__).parent / "data" / "swc" / f"{cell_id}.swc"
    cell = step("load", lambda: (m := load_swc(path, unit=8 * units.nm), f"{m.n_nodes} nodes"))
    s = SWC_SETTINGS

    def simplify():
        out, report = simplify_morphology(
            cell,
            min_radius=s["min_radius_um"] * units.um,
            merge_tolerance=s["merge_tolerance_um"] * units.um,
            min_twig_length=s["min_twig_length_um"] * units.um,
            keep_largest_tree=True,
        )
        return out, report.summary()

    simplified = step("simplify", simplify)

    def surface():
        parts = cell_parts(simplified)
        mesh = morphology_surface(parts)
        total, enclosed = parts.volume_sum(), mesh.signed_volume()
        return mesh, (
            f"{mesh.n_faces} triangles; soma {parts.soma_convention}; volume "
            f"{enclosed / units.um**3:.1f} um^3 vs frustum+soma sum "
            f"{total / units.um**3:.1f} um^3 ({100 * (enclosed - total) / total:+.1f} %)"
        )

    return step("surface", surface)


def _navis_mesh(cell_id: str, step: _Steps, args):
    import navis
    import numpy as np

    from mf_dmri import units
    from mf_dmri.geometry import SurfaceMesh

    def load():
        neuron = navis.example_neurons(kind="mesh")[NAVIS_IDS.index(cell_id)]
        assert str(neuron.id) == cell_id, (neuron.id, cell_id)
        mesh = SurfaceMesh(
            np.asarray(neuron.vertices, dtype=np.float64) * 8 * units.nm,
            np.asarray(neuron.faces, dtype=np.int64),
        )
        return mesh, f"{mesh.n_faces} triangles"

    return step("load", load)


def _pipeline(cell: str, step: _Steps, args) -> None:
    import numpy as np
    import torch

    from mf_dmri import units
    from mf_dmri.fem import mesh_eigenbasis_with_diagnostics
    from mf_dmri.geometry import check_surface, repair_surface, tetrahedralize
    from mf_dmri.signal import Compartment, signal_with_error

    torch.set_num_threads(1)
    kind, cell_id = cell.split(":")
    surface = (_swc_surface if kind == "swc" else _navis_mesh)(cell_id, step, args)

    def repair():
        repaired, report = repair_surface(surface, merge_tolerance=args.repair_merge_tolerance)
        kinds = ", ".join(f"{a.kind} {a.count}" for a in report.actions) or "none"
        bodies = check_surface(
            repaired, allow_multiple_bodies=True, check_self_intersections=False
        ).n_bodies
        return (repaired, bodies), (
            f"actions: {kinds}; volume change {100 * report.volume_change:+.2f} %; "
            f"{repaired.n_faces} triangles; {bodies} bodies"
        )

    repaired, bodies = step("repair", repair)

    settings = _remesh_settings(kind, args)

    def remesh():
        from mf_dmri.geometry import remesh_surface

        remeshed, report = remesh_surface(
            repaired,
            max_edge=settings["max_edge_um"] * units.um,
            min_edge=settings["min_edge_um"] * units.um,
            cells_across=settings["cells_across"],
            keep_creases=args.remesh_keep_creases,
        )
        count = check_surface(
            remeshed, allow_multiple_bodies=True, check_self_intersections=False
        ).n_bodies
        return (remeshed, count), report.summary().replace("remesh: ", "")

    if settings["max_edge_um"] > 0:
        repaired, bodies = step("remesh", remesh)

    def tets():
        mesh = tetrahedralize(
            repaired,
            method=args.method,
            allow_multiple_bodies=bodies > 1,
            thin_part_cells=args.thin_part_cells,
            # in this process, so that its CPU time is counted (the parent kills this
            # process at the step budget)
            time_budget=None,
        )
        q = mesh.quality
        change = 100 * (q.volume - q.surface_volume) / q.surface_volume
        return mesh, (
            f"{q.n_nodes} nodes, {q.n_elements} tets, min dihedral {q.min_dihedral:.2f} deg, "
            f"volume vs repaired surface {change:+.3f} %"
        )

    mesh = step("tets", tets)

    def eigen():
        result = mesh_eigenbasis_with_diagnostics(
            mesh.nodes,
            mesh.elements,
            length_scale=args.length_scale_um * units.um,
            order=args.order,
        )
        return result.basis, (
            f"{result.basis.num_modes} modes ({result.num_pieces} pieces), "
            f"max residual {result.residuals.max():.1e}"
        )

    basis = step("eigenbasis", eigen)

    def companion():
        # the other element order on the same mesh, for the discretisation error bar
        # (kept in the basis, reused by signal_with_error below)
        other = basis.discretisation.companion(float(basis.eigenvalues[-1]), basis.axes)
        return None, f"P{basis.discretisation.companion_order}: {other.num_modes} modes"

    step("companion", companion)

    count = 10 if args.quick else 100
    acquisition = gallery_acquisition(count)

    def signals():
        # the library's propagator choice (by measured cost: Krylov here; the forced
        # shift-and-invert one took 301 s vs 8 s for 20 signals on a 885-mode basis)
        result = signal_with_error(Compartment(basis, 2e-9), acquisition)
        values = result.signal.abs()
        return None, (
            f"{count} signals: |E| {float(values.min()):.4f}..{float(values.max()):.4f} "
            f"(mean {float(values.mean()):.4f}); {_bar_summary(result)}"
        )

    step("signals", signals)

    def coarser_cutoffs():
        # what a larger length_scale would have given: the basis truncated at its cutoff
        # (cluster-safe, as a solve at that cutoff keeps), the same signals and error bar
        # (the companion is reused: it is kept at the full cutoff)
        rows = []
        for ell in args.cutoff_study:
            truncated = basis.truncated((2 * np.pi / (ell * units.um)) ** 2)
            clock = time.process_time()
            result = signal_with_error(Compartment(truncated, 2e-9), acquisition)
            rows.append(
                f"length_scale {ell:g} um: {truncated.num_modes} modes, signals "
                f"{time.process_time() - clock:.1f} s, {_bar_summary(result)}"
            )
        return None, "; ".join(rows)

    if args.cutoff_study:
        step("coarser cutoffs", coarser_cutoffs)


def gallery_acquisition(count: int):
    """The gallery's PGSE measurements: delta 10 ms, Delta 30 ms, ``count`` b-values uniform
    in [0, 3000] s/mm^2 with random directions (seed 0)."""
    import numpy as np
    import torch

    from mf_dmri import units
    from mf_dmri.sequences import PGSE, Acquisition

    rng = np.random.default_rng(0)
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    b = rng.uniform(0, 3000, size=count) * units.s_per_mm2
    return Acquisition.from_bvalues(
        PGSE(10 * units.ms, 30 * units.ms), torch.tensor(b), torch.tensor(directions)
    )


def _bar_summary(result) -> str:
    """The error bar of a SignalResult: its largest value, the parts, the verdict."""
    parts = ", ".join(
        f"{name} {float(getattr(result, f'{name}_error').max()):.1e}"
        for name in ("truncation", "discretisation", "propagation")
    )
    return (
        f"error bar max {result.max_error_bar:.1e} ({parts}; discretisation: P1 vs P2 on the "
        f"same mesh) (tolerance {result.tolerance:g}, within: {result.within_tolerance})"
    )


def _remesh_settings(kind: str, args) -> dict:
    """The remesh settings of a kind of cell ("mesh" or "swc"), flags overriding REMESH."""
    given = {
        "max_edge_um": args.remesh_max_edge_um,
        "min_edge_um": args.remesh_min_edge_um,
        "cells_across": args.remesh_cells_across,
    }
    return {k: REMESH[kind][k] if v is None else v for k, v in given.items()}


def _child(cell: str, out: mp.Queue, args) -> None:
    sys.path.insert(0, str(ROOT))
    step = _Steps(out)
    try:
        _pipeline(cell, step, args)
        out.put(("finished",))
    except Exception as exc:  # reported in the table
        out.put(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=3)))


def run_cell(cell: str, args) -> dict:
    context = mp.get_context("spawn")
    out = context.Queue()
    process = context.Process(target=_child, args=(cell, out, args))
    start = time.time()
    process.start()
    rows, current, failure = [], None, None
    while True:
        try:
            message = out.get(timeout=5)
        except queue.Empty:
            if current and time.time() - current[1] > args.step_budget:
                process.kill()
                failure = f"{current[0]}: over the step budget of {args.step_budget:g} s"
                break
            if not process.is_alive():
                failure = (
                    f"{current[0] if current else 'start'}: child died (exit {process.exitcode})"
                )
                break
            continue
        if message[0] == "start":
            current = (message[1], message[2])
        elif message[0] == "done":
            rows.append(message[1:])
            print(
                f"  {cell} {message[1]}: {message[2]:.1f} s wall, {message[5]:.1f} s CPU; "
                f"{message[4]}",
                flush=True,
            )
            current = None
        elif message[0] == "error":
            failure = f"{current[0] if current else '?'}: {message[1]}"
            print(message[2], flush=True)
            break
        else:
            break
    process.join(timeout=10)
    if process.is_alive():
        process.kill()
    return {"cell": cell, "rows": rows, "failure": failure, "total": time.time() - start}


def _header(args) -> str:
    settings = {kind: _remesh_settings(kind, args) for kind in REMESH}
    lines = [
        "# Real-cell gallery (end to end on one core)",
        "",
        f"Generated by `OMP_NUM_THREADS=1 python benchmarks/bench_real_cells.py "
        f"{' '.join(sys.argv[1:])}` on {platform.machine()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; a 2-core machine shared "
        f"with other jobs (load average about {os.getloadavg()[0]:.0f}): wall times are inflated.",
        "",
        f"Repair merge_tolerance {args.repair_merge_tolerance:g}; remesh_surface "
        + "; ".join(
            f"({kind} cells) max_edge {r['max_edge_um']} um, min_edge {r['min_edge_um']} um, "
            f"cells_across {r['cells_across']}"
            for kind, r in settings.items()
        )
        + f", keep_creases {args.remesh_keep_creases} (max_edge 0: not remeshed); "
        f"mesher: {args.method} (thin_part_cells {args.thin_part_cells}); eigenbasis "
        f"length_scale {args.length_scale_um} um, P{args.order} (companion: the other "
        "order); signals: the library's propagator (chosen by measured cost); "
        f"per-step budget {args.step_budget:g} s; SWC simplification {SWC_SETTINGS} "
        "(radius floor, collinear merge tolerance, shortest twig kept), largest tree kept.",
        "Signals: PGSE 10/30 ms, b uniform in [0, 3000] s/mm^2, random directions, "
        "D = 2 um^2/ms; error bar from `signal_with_error` "
        "(truncation + discretisation, P1 vs P2 on the same mesh, + propagation)"
        + (
            f"; then the same from the basis truncated at length_scale "
            f"{', '.join(f'{v:g}' for v in args.cutoff_study)} um (step 'coarser cutoffs')."
            if args.cutoff_study
            else "."
        ),
        "Peak RSS is the child process's maxrss after the step (cumulative); CPU is the "
        "child's user + system time (one thread), its compute on one core.",
        "",
    ]
    return "\n".join(lines)


def _table(results: list[dict]) -> str:
    lines = [
        "",
        "| cell | result | total wall [s] | total CPU [s] |",
        "|---|---|---|---|",
    ]
    for r in results:
        status = "end to end" if r["failure"] is None else f"FAILED at {r['failure']}"
        cpu = [row[4] for row in r["rows"] if len(row) > 4]
        total_cpu = f"{sum(cpu):.0f}" if len(cpu) == len(r["rows"]) else "-"
        lines.append(f"| {r['cell']} | {status} | {r['total']:.0f} | {total_cpu} |")
    for r in results:
        lines += ["", f"## {r['cell']}", ""]
        lines.append("| step | wall [s] | CPU [s] | peak RSS [MiB] | result |")
        lines.append("|---|---|---|---|---|")
        for name, seconds, rss, info, *cpu in r["rows"]:
            cpu_text = f"{cpu[0]:.1f}" if cpu else "-"
            lines.append(f"| {name} | {seconds:.1f} | {cpu_text} | {rss:.0f} | {info} |")
        if r["failure"] is not None:
            lines.append(f"| **failed** | | | | {r['failure']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    from mf_dmri.fem import DEFAULT_ELEMENT_ORDER
    from mf_dmri.geometry import tetrahedralize

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", default=",".join(ALL_CELLS), help="comma-separated cells")
    parser.add_argument("--quick", action="store_true", help="10 signals instead of 100")
    parser.add_argument("--step-budget", type=float, default=600.0, help="[s] per step")
    parser.add_argument("--length-scale-um", type=float, default=3.0)
    parser.add_argument(
        "--cutoff-study",
        type=lambda text: [float(v) for v in text.split(",") if v],
        default=[],
        help="comma-separated length scales [um] larger than --length-scale-um: after the "
        "signals, the same signals and error bar from the basis truncated at each",
    )
    parser.add_argument("--method", default="netgen", help="tetrahedralize method")
    parser.add_argument(
        "--order",
        type=int,
        default=DEFAULT_ELEMENT_ORDER,
        help="element order of the eigenbasis (default: the library's)",
    )
    parser.add_argument(
        "--remesh-max-edge-um",
        type=float,
        help="remesh_surface max_edge [um] for every cell (default: REMESH by kind; 0: no "
        "remeshing step)",
    )
    parser.add_argument(
        "--remesh-min-edge-um", type=float, help="min_edge [um] (default: REMESH by kind)"
    )
    parser.add_argument(
        "--remesh-cells-across", type=float, help="cells_across (default: REMESH by kind)"
    )
    parser.add_argument(
        "--remesh-keep-creases",
        action="store_true",
        help="remesh_surface keep_creases=True (less volume to restore, worse triangles)",
    )
    parser.add_argument(
        "--repair-merge-tolerance",
        type=float,
        default=1e-3,
        help="repair_surface merge_tolerance (fraction of the local edge; default 1e-3); "
        "0.02 collapses the union's sliver edges of the SWC surfaces",
    )
    parser.add_argument(
        "--thin-part-cells",
        type=float,
        default=inspect.signature(tetrahedralize).parameters["thin_part_cells"].default,
        help="tetrahedralize thin_part_cells (default: the library's; a negative value: "
        "None, the surface triangles alone set the size)",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/real_cells.md")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="*",
        help="instead of running: write --output from the .json files of earlier runs",
    )
    args = parser.parse_args()
    if args.thin_part_cells is not None and args.thin_part_cells < 0:
        args.thin_part_cells = None
    if args.merge:
        runs = [json.loads(path.read_text()) for path in args.merge]
        results = [
            {**cell, "cell": f"{cell['cell']} (run {k + 1})"}
            for k, run in enumerate(runs)
            for cell in run["results"]
        ]
        headers = [f"Run {k + 1}. " + run["header"].split("\n", 2)[2] for k, run in enumerate(runs)]
        title = "# Real-cell gallery (end to end on one core)\n\n"
        args.output.write_text(title + "\n".join(headers) + _table(results))
        print(f"wrote {args.output}")
        return
    cells = [c for c in args.cells.split(",") if c]
    unknown = [c for c in cells if c not in ALL_CELLS]
    if unknown:
        parser.error(f"unknown cells {unknown}; choose from {', '.join(ALL_CELLS)}")
    results = []
    for cell in cells:
        print(f"{cell}:", flush=True)
        results.append(run_cell(cell, args))
        args.output.write_text(_header(args) + _table(results))
        record = {"header": _header(args), "results": results}
        args.output.with_suffix(".json").write_text(json.dumps(record, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
