"""Study of the a-priori cutoff of ``mf.signal`` (no a-posteriori check) on seeded random
analytic cases: PGSE with narrow to wide pulses and cos-OGSE, slab / cylinder / sphere.

For each case the error of the factor at the a-priori cutoff (what ``mf.signal`` uses) is
measured against the same closed forms at twice its K = R sqrt(lambda_0) (four times the
cutoff; the truncation error falls like K^-3 to K^-5, so the reference is 8-30x closer),
at the default tolerance 1e-4.  The report gives, per waveform kind, the share of cases
within the tolerance, the largest error / tolerance, and the K of the present rule
against the damping-and-q rule alone (``apriori_unit_cutoff``, the rule before the
Gaussian-phase tail was added).

    python validation/apriori_study.py --pgse 60 --ogse 24 --output apriori_study
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import mf_dmri as mf
from mf_dmri.signal.cutoff import (
    DEFAULT_MEMORY_BUDGET,
    DEFAULT_TOLERANCE,
    adapted_factor,
    apriori_unit_cutoff,
    dephasing_scales,
)
from mf_dmri.signal.propagation import factor_signal
from mf_dmri.units import ms, s_per_mm2, um, um2_per_ms

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from coverage_study import SHAPES, _domain  # noqa: E402  (the coverage study's shapes)

#: Largest radius per shape and waveform kind [um] (the reference must stay affordable).
MAX_RADIUS = {
    "pgse": {"slab": 60.0, "cylinder": 25.0, "sphere": 25.0},
    "ogse": {"slab": 60.0, "cylinder": 8.0, "sphere": 6.0},
}
#: Cases whose reference would hold more modes than this are skipped (listed as such).
MAX_REFERENCE_MODES = {"pgse": 4000, "ogse": 800}


def draw_case(rng: np.random.Generator, index: int, kind: str) -> dict:
    """A seeded case: radius log-uniform from 0.5 um, D in 0.3-3 um^2/ms, delta log-
    uniform 0.5-40 ms, Delta - delta log-uniform 1-100 ms, b_max in 1,000-20,000 s/mm^2
    (OGSE: 1,000-10,000) with b = 0.3 b_max and b_max."""
    shape = SHAPES[index % 3]
    radius = float(np.exp(rng.uniform(math.log(0.5), math.log(MAX_RADIUS[kind][shape]))))
    diffusivity = float(rng.choice([0.3, 0.5, 1.0, 2.0, 3.0]))
    delta = float(np.exp(rng.uniform(math.log(0.5), math.log(40.0))))
    big_delta = delta + float(np.exp(rng.uniform(0.0, math.log(100.0))))
    tops = [1000.0, 3000.0, 10000.0] + ([20000.0] if kind == "pgse" else [])
    top = float(rng.choice(tops))
    return {
        "shape": shape,
        "radius_um": round(radius, 3),
        "diffusivity": diffusivity,
        "delta_ms": round(delta, 3),
        "big_delta_ms": round(big_delta, 3),
        "kind": kind,
        "bvalues": [0.3 * top, top],
    }


def run_case(case: dict) -> dict:
    """Error of the a-priori cutoff against the reference at twice its K."""
    delta, big_delta = case["delta_ms"] * ms, case["big_delta_ms"] * ms
    if case["kind"] == "pgse":
        waveform = mf.PGSE(delta, big_delta)
    else:
        waveform = mf.OGSE(delta, big_delta, num_periods=2, kind="cos")
    bvalues = [b * s_per_mm2 for b in case["bvalues"]]
    allow = mf.Plausibility(allow={"gradient"})  # strong gradients of short pulses
    pieces = mf.Acquisition.from_bvalues(
        waveform, bvalues, [[1.0, 0, 0]] * 2, plausibility=allow
    ).pieces()
    radius = case["radius_um"] * um
    (factor,) = _domain(case["shape"], radius).factors
    diffusivity = case["diffusivity"] * um2_per_ms
    tolerance = DEFAULT_TOLERANCE["analytic"]
    started = time.perf_counter()
    used = adapted_factor(
        factor, diffusivity, pieces, tolerance, DEFAULT_MEMORY_BUDGET, standalone=True
    )
    value = factor_signal(used, diffusivity, pieces)
    seconds = time.perf_counter() - started
    unit = radius * math.sqrt(float(used.eigenvalues.max()))
    reference_cutoff = (2 * unit / radius) ** 2
    if (
        factor.source.predicted_modes(reference_cutoff, axial=True)
        > MAX_REFERENCE_MODES[case["kind"]]
    ):
        return {**case, "skipped": True}
    reference_basis = factor.source.basis(reference_cutoff, factor.axes, axial=True)
    reference = factor_signal(reference_basis, diffusivity, pieces)
    q_max, t_d = dephasing_scales(pieces, factor.axes)
    damping_unit = apriori_unit_cutoff(
        q_max * radius, radius / math.sqrt(diffusivity * t_d), tolerance
    )
    return {
        **case,
        "q_radius": q_max * radius,
        "unit_cutoff": unit,
        "damping_unit_cutoff": damping_unit,
        "modes": int(used.num_modes),
        "signal": float(reference.abs().min()),
        "error": float((value - reference).abs().max()),
        "tolerance": tolerance,
        "seconds": seconds,
    }


def _summary(rows: list[dict], name: str) -> str:
    if not rows:
        return f"- {name}: no case"
    within = sum(r["error"] <= r["tolerance"] for r in rows) / len(rows)
    worst = max(r["error"] / r["tolerance"] for r in rows)
    growth = [r["unit_cutoff"] / r["damping_unit_cutoff"] for r in rows]
    return (
        f"- {name}: {len(rows)} cases; within the tolerance {100 * within:.1f} %; "
        f"largest error / tolerance {worst:.3g}; K / K of the damping rule: median "
        f"{statistics.median(growth):.3g}, largest {max(growth):.3g}; median modes "
        f"{statistics.median(r['modes'] for r in rows):.0f}"
    )


def report(rows: list[dict], skipped: list[dict], seconds: float, command: str) -> str:
    lines = [
        "# Study of the a-priori cutoff (`mf.signal` without an error bar)",
        "",
        f"Generated by `{command}`; the rule is `apriori_cutoff` in",
        "`mf_dmri/signal/cutoff.py` with the Gaussian-phase tail of",
        "`mf_dmri/signal/gaussian_tail.py`.  Reference: the same closed forms at twice",
        "the K of the cutoff.  `K old`: the damping-and-q rule alone (before the tail).",
        "",
        _summary(rows, "all"),
        _summary([r for r in rows if r["kind"] == "pgse"], "PGSE"),
        _summary([r for r in rows if r["kind"] == "ogse"], "cos-OGSE (2 periods)"),
        f"- skipped (reference over {MAX_REFERENCE_MODES} modes): {len(skipped)}",
        f"- run time: {seconds:.0f} s",
        "",
        "| shape | R [um] | D [um^2/ms] | delta, Delta [ms] | kind | b [s/mm^2] | q R | "
        "K | K old | modes | error | time [s] |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['radius_um']:.3g} | {r['diffusivity']} | "
            f"{r['delta_ms']:.3g}, {r['big_delta_ms']:.3g} | {r['kind']} | "
            f"{r['bvalues'][1]:.0f} | {r['q_radius']:.3g} | {r['unit_cutoff']:.3g} | "
            f"{r['damping_unit_cutoff']:.3g} | {r['modes']} | {r['error']:.2e} | "
            f"{r['seconds']:.2f} |"
        )
    if skipped:
        lines += ["", "Skipped (reference over the mode limit):", ""]
        lines += [
            f"- {r['shape']} R = {r['radius_um']:.3g} um, D = {r['diffusivity']} um^2/ms, "
            f"{r['kind']} {r['delta_ms']:.3g} / {r['big_delta_ms']:.3g} ms, "
            f"b = {r['bvalues'][1]:.0f} s/mm^2"
            for r in skipped
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pgse", type=int, default=60, help="number of PGSE cases")
    parser.add_argument("--ogse", type=int, default=24, help="number of cos-OGSE cases")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="apriori_study", help="report name in validation/")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    cases = [draw_case(rng, i, "pgse") for i in range(args.pgse)]
    cases += [draw_case(rng, i, "ogse") for i in range(args.ogse)]
    started = time.perf_counter()
    rows, skipped = [], []
    for case in cases:
        row = run_case(case)
        (skipped if row.get("skipped") else rows).append(row)
        print(json.dumps(row), flush=True)
    command = "python validation/apriori_study.py " + " ".join(sys.argv[1:])
    text = report(rows, skipped, time.perf_counter() - started, command.strip())
    (HERE / f"{args.output}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
