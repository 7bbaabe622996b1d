"""Coverage study of the error bar: does ``signal_with_error``'s bar cover the true error?

Regenerates validation/coverage_study.md and validation/coverage_study.png.

Cases: analytic slab (width 2R, gradient along the normal), cylinder (radius R, gradient
perpendicular or oblique to the axis) and sphere, R from 0.5 to 200 um, b up to 20,000
s/mm^2, short and long PGSE timings and cosine OGSE, D from 1 to 3 um^2/ms, drawn from a
fixed grid by a seeded generator (the rule is not tuned per case).  Each signal with its
bar (default tolerance 1e-4) is compared with an independent converged reference: the
same closed-form eigen-data at four times the accepted cutoff (twice the cutoff of the
check), which is not used by the bar.  Reported: the fraction of measurements whose bar
covers the true error, and the median of bar / true error.

Mesh cases (validation/coverage_mesh.py): coarse default meshes of a sphere, a cylinder, an
ellipsoid and a bipolar neuron, P1 and P2, default mesh tolerance 1e-3, against P2 on the
uniformly refined mesh at four times the cutoff (same polyhedron); their bar includes the
discretisation error (P1 versus P2 on the mesh, mf_dmri/signal/discretisation.py).

Usage: python validation/coverage_study.py [--cases N] [--mesh-cases N] [--seed S]
[--output STEM] [--mesh-output STEM] [--jobs J] [--mesh-shapes SHAPE ...]; the default run writes
validation/coverage_study.md (every case) and validation/coverage_study_mesh.md (the mesh
cases alone, from the same run).  ``--jobs`` runs the cases in J processes (the mesh cases
one shape per task, so each process meshes and solves a shape once).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import mf_dmri as mf
from mf_dmri.signal.compartment import Compartment
from mf_dmri.units import ms, s_per_mm2, um, um2_per_ms

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from coverage_mesh import draw_mesh_cases, run_mesh_case  # noqa: E402
from coverage_runner import measurement_label, run_coverage_case  # noqa: E402

#: Timings (delta, Delta) [ms] and waveform kinds of the study.
TIMINGS = {"short": (5.0, 15.0), "long": (20.0, 50.0)}
KINDS = ("pgse", "ogse")
SHAPES = ("slab", "cylinder", "sphere")
#: Largest radius per shape [um]: the reference at 4x the cutoff must stay affordable.
MAX_RADIUS = {"slab": 200.0, "cylinder": 25.0, "sphere": 25.0}


@dataclass(frozen=True)
class Case:
    """One case: ``shape``, radius [um], b-values [s/mm^2], timing name, waveform kind,
    diffusivity [um^2/ms], gradient direction (lab frame)."""

    shape: str
    radius_um: float
    bvalues: tuple[float, ...]
    timing: str
    kind: str
    diffusivity: float
    direction: tuple[float, float, float]

    def label(self) -> str:
        return measurement_label(f"{self.shape} R={self.radius_um:.3g}um", self)


def draw_cases(count: int, seed: int = 0) -> list[Case]:
    """``count`` cases cycling over shape x timing x kind, with seeded radius (log-uniform
    from 0.5 um to the shape's maximum), b-values, diffusivity and direction."""
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(count):
        shape = SHAPES[index % 3]
        timing = tuple(TIMINGS)[(index // 3) % 2]
        kind = KINDS[(index // 6) % 2]
        radius = float(np.exp(rng.uniform(math.log(0.5), math.log(MAX_RADIUS[shape]))))
        top = float(rng.choice([1000.0, 3000.0, 10000.0, 20000.0]))
        direction = (1.0, 0.0, 0.0)
        if shape == "cylinder" and rng.uniform() < 0.5:
            direction = (0.8, 0.0, 0.6)
        cases.append(
            Case(
                shape,
                round(radius, 3),
                (0.3 * top, top),
                timing,
                kind,
                float(rng.choice([1.0, 2.0, 3.0])),
                direction,
            )
        )
    return cases


def _domain(shape: str, radius: float):
    if shape == "slab":
        return mf.slab(2 * radius, normal=(1.0, 0.0, 0.0))
    if shape == "cylinder":
        return mf.cylinder(radius, axis=(0.0, 0.0, 1.0))
    return mf.sphere(radius)


def _acquisition(case: Case):
    delta, big_delta = TIMINGS[case.timing]
    if case.kind == "pgse":
        waveform = mf.PGSE(delta * ms, big_delta * ms)
    else:
        waveform = mf.OGSE(delta * ms, big_delta * ms, num_periods=2, kind="cos")
    bvalues = [b * s_per_mm2 for b in case.bvalues]
    return mf.Acquisition.from_bvalues(waveform, bvalues, [list(case.direction)] * len(bvalues))


def _reference(case: Case, result, pieces) -> torch.Tensor:
    """The same closed forms at four times the accepted cutoff of every factor."""
    domain = _domain(case.shape, case.radius_um * um)
    factors = []
    for factor, cutoff in zip(domain.factors, result.max_eigenvalues):
        axial = factor.isotropic
        factors.append(factor.source.basis(4.0 * cutoff, factor.axes, axial=axial))
    from dataclasses import replace

    fixed = replace(domain, factors=tuple(factors))
    return mf.signal(Compartment(fixed, case.diffusivity * um2_per_ms), pieces)


def run_case(case: Case) -> dict:
    """Signal, bar and true error of one case (max over its measurements)."""
    pieces = _acquisition(case).pieces()
    domain = _domain(case.shape, case.radius_um * um)
    row, _ = run_coverage_case(
        case,
        lambda: Compartment(domain, case.diffusivity * um2_per_ms),
        pieces,
        lambda result: _reference(case, result, pieces),
    )
    return row


def summary(rows: list[dict]) -> tuple[float, float]:
    """(fraction of measurements whose bar covers the error, median bar / error)."""
    errors = np.concatenate([r["error"] for r in rows])
    bars = np.concatenate([r["bar"] for r in rows])
    coverage = float(np.mean(errors <= bars))
    meaningful = errors > 1e-10  # below: round-off of the reference, ratio not defined
    ratio = float(np.median(bars[meaningful] / errors[meaningful])) if meaningful.any() else 1.0
    return coverage, ratio


def _summary_lines(rows: list[dict], name: str) -> list[str]:
    coverage, ratio = summary(rows)
    return [
        f"- {name}: {len(rows)} cases, {sum(r['error'].size for r in rows)} measurements; "
        f"bar covers the true error in {100 * coverage:.1f} % (target >= 95 %); median bar "
        f"/ true error {ratio:.3g} (target within 10x); every bar within the tolerance in "
        f"{sum(r['within'] for r in rows)} cases",
    ]


def _report(rows: list[dict], mesh_rows: list[dict], seconds: float, command: str) -> str:
    lines = [
        "# Coverage study of the error bar",
        "",
        f"Generated by `{command}`; the rule is in",
        "`mf_dmri/signal/cutoff.py` (a priori), `mf_dmri/signal/error_estimate.py`",
        "(a posteriori) and `mf_dmri/signal/discretisation.py` (finite-element error).",
        "Analytic cases: default tolerance 1e-4; reference: the same closed forms at four",
        "times the accepted cutoff.  Mesh cases: default tolerance 1e-3; reference: P2 on the",
        "uniformly refined mesh (same polyhedron) at four times the cutoff of the basis.",
        "`error` and `bar` are the largest over the case's measurements (b = 0.3 b_max and",
        "b_max).",
        "",
        *_summary_lines(rows + mesh_rows, "all"),
        *(_summary_lines(rows, "analytic") if rows else []),
        *(_summary_lines(mesh_rows, "meshes") if mesh_rows else []),
        f"- run time: {seconds:.0f} s",
    ]
    if rows:
        lines += [
            "",
            "| case | modes | signal | true error | bar | covered | time [s] |",
            "|---|---|---|---|---|---|---|",
        ]
    for r in rows:
        lines.append(
            f"| {r['case'].label()} | {r['modes']} | {r['signal'][-1]:.4g} | "
            f"{r['error'].max():.2e} | {r['bar'].max():.2e} | {'yes' if r['covered'] else 'NO'} "
            f"| {r['seconds']:.2f} |"
        )
    if mesh_rows:
        lines += [
            "",
            "Mesh cases (`discretisation`: the finite-element part of the bar; `polyhedron`:",
            "|V_polyhedron / V_curved - 1|, the geometric error that the bar does not cover):",
            "",
            "| case | modes | signal | true error | bar | discretisation | covered | "
            "polyhedron | time [s] |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in mesh_rows:
            lines.append(
                f"| {r['case'].label()} | {r['modes']} | {r['signal'][-1]:.4g} | "
                f"{r['error'].max():.2e} | {r['bar'].max():.2e} | "
                f"{r['discretisation'].max():.2e} | {'yes' if r['covered'] else 'NO'} | "
                f"{r['polyhedral_error']:.2g} | {r['seconds']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict], mesh_rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 5))
    floor = 1e-13
    for group, name in ((rows, "analytic"), (mesh_rows, "mesh (P1, P2)")):
        if not group:
            continue
        errors = np.concatenate([r["error"] for r in group])
        bars = np.concatenate([r["bar"] for r in group])
        axis.loglog(np.maximum(errors, floor), np.maximum(bars, floor), "o", ms=4, label=name)
    line = [floor, 1e-1]
    axis.loglog(line, line, "k-", lw=1, label="bar = error")
    axis.loglog(line, [10 * v for v in line], "k:", lw=1, label="bar = 10 x error")
    axis.axhline(1e-4, color="gray", lw=0.8, ls="--", label="tolerances 1e-4, 1e-3")
    axis.axhline(1e-3, color="gray", lw=0.8, ls="--")
    axis.set_xlabel("true error |E - E_ref|")
    axis.set_ylabel("error bar")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=42)
    parser.add_argument("--mesh-cases", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="coverage_study", help="file stem in validation/")
    parser.add_argument(
        "--mesh-output",
        default="coverage_study_mesh",
        help="file stem of the mesh cases alone (written when there are analytic cases too)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--mesh-shapes",
        nargs="*",
        default=None,
        help="keep only the mesh cases of these shapes (sphere cylinder ellipsoid neuron)",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    cases = draw_cases(args.cases, args.seed)
    by_shape: dict[str, list] = {}
    for case in draw_mesh_cases(args.mesh_cases, args.seed):
        if args.mesh_shapes is None or case.shape in args.mesh_shapes:
            by_shape.setdefault(case.shape, []).append(case)
    tasks = list(by_shape.values()) + [[case] for case in cases]  # the long ones first
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            done = list(pool.map(_run_task, tasks))
    else:
        done = [_run_task(task) for task in tasks]
    found = [row for rows_of_task in done for row in rows_of_task]
    rows = [r for r in found if isinstance(r["case"], Case)]
    mesh_cases = draw_mesh_cases(args.mesh_cases, args.seed)
    mesh_rows = [r for r in found if not isinstance(r["case"], Case)]
    mesh_rows.sort(key=lambda r: mesh_cases.index(r["case"]))
    seconds = time.perf_counter() - start
    command = "python validation/coverage_study.py " + " ".join(sys.argv[1:])
    (HERE / f"{args.output}.md").write_text(_report(rows, mesh_rows, seconds, command.strip()))
    _plot(rows, mesh_rows, HERE / f"{args.output}.png")
    if rows and mesh_rows:
        text = _report([], mesh_rows, seconds, command.strip())
        (HERE / f"{args.mesh_output}.md").write_text(text)
        _plot([], mesh_rows, HERE / f"{args.mesh_output}.png")
    coverage, ratio = summary(rows + mesh_rows)
    print(f"coverage {coverage:.3f}, median bar/error {ratio:.3g}")


def _run_task(cases: list) -> list[dict]:
    """Run one task: an analytic case, or the mesh cases of one shape (in order)."""
    found = []
    for case in cases:
        row = run_case(case) if isinstance(case, Case) else run_mesh_case(case, _acquisition(case))
        _print_row(row)
        found.append(row)
    return found


def _print_row(row: dict) -> None:
    print(
        f"{row['case'].label()}: err {row['error'].max():.2e} bar {row['bar'].max():.2e}",
        flush=True,
    )


if __name__ == "__main__":
    main()
