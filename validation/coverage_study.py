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

Usage: python validation/coverage_study.py [--cases N] [--seed S]
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import mf_dmri as mf
from mf_dmri.signal.compartment import Compartment
from mf_dmri.signal.error_estimate import signal_with_error
from mf_dmri.units import ms, s_per_mm2, um, um2_per_ms

HERE = Path(__file__).resolve().parent

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
        b = "/".join(f"{v:g}" for v in self.bvalues)
        return (
            f"{self.shape} R={self.radius_um:.3g}um b={b} {self.timing} {self.kind} "
            f"D={self.diffusivity:g}"
        )


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
    acquisition = _acquisition(case)
    pieces = acquisition.pieces()
    domain = _domain(case.shape, case.radius_um * um)
    start = time.perf_counter()
    result = signal_with_error(Compartment(domain, case.diffusivity * um2_per_ms), pieces)
    seconds = time.perf_counter() - start
    reference = _reference(case, result, pieces)
    error = (result.signal - reference).abs().numpy()
    bar = result.error_bar.numpy()
    return {
        "case": case,
        "signal": result.signal.real.numpy(),
        "error": error,
        "bar": bar,
        "covered": bool(np.all(error <= bar)),
        "modes": result.num_modes,
        "seconds": seconds,
        "within": result.within_tolerance,
    }


def summary(rows: list[dict]) -> tuple[float, float]:
    """(fraction of measurements whose bar covers the error, median bar / error)."""
    errors = np.concatenate([r["error"] for r in rows])
    bars = np.concatenate([r["bar"] for r in rows])
    coverage = float(np.mean(errors <= bars))
    meaningful = errors > 1e-10  # below: round-off of the reference, ratio not defined
    ratio = float(np.median(bars[meaningful] / errors[meaningful])) if meaningful.any() else 1.0
    return coverage, ratio


def _report(rows: list[dict], seconds: float) -> str:
    coverage, ratio = summary(rows)
    lines = [
        "# Coverage study of the error bar",
        "",
        "Generated by `python validation/coverage_study.py`; the rule is in",
        "`mf_dmri/signal/cutoff.py` (a priori) and `mf_dmri/signal/error_estimate.py`",
        "(a posteriori).  Default tolerance 1e-4; reference: the same closed forms at four",
        "times the accepted cutoff.  `error` and `bar` are the largest over the case's",
        "measurements (b = 0.3 b_max and b_max).",
        "",
        f"- cases: {len(rows)}, measurements: {sum(r['error'].size for r in rows)}",
        f"- bar covers the true error: {100 * coverage:.1f} % of measurements (target >= 95 %)",
        f"- median bar / true error: {ratio:.3g} (target within 10x)",
        f"- every bar within the tolerance: {sum(r['within'] for r in rows)} of {len(rows)} cases",
        f"- run time: {seconds:.0f} s",
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
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    errors = np.concatenate([r["error"] for r in rows])
    bars = np.concatenate([r["bar"] for r in rows])
    figure, axis = plt.subplots(figsize=(5, 5))
    floor = 1e-13
    axis.loglog(np.maximum(errors, floor), np.maximum(bars, floor), "o", ms=4)
    line = [floor, 1e-2]
    axis.loglog(line, line, "k-", lw=1, label="bar = error")
    axis.loglog(line, [10 * v for v in line], "k:", lw=1, label="bar = 10 x error")
    axis.axhline(1e-4, color="gray", lw=0.8, ls="--", label="tolerance")
    axis.set_xlabel("true error |E - E_ref|")
    axis.set_ylabel("error bar")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=42)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    rows = []
    for case in draw_cases(args.cases, args.seed):
        rows.append(run_case(case))
        r = rows[-1]
        print(f"{case.label()}: err {r['error'].max():.2e} bar {r['bar'].max():.2e}", flush=True)
    seconds = time.perf_counter() - start
    (HERE / "coverage_study.md").write_text(_report(rows, seconds))
    _plot(rows, HERE / "coverage_study.png")
    coverage, ratio = summary(rows)
    print(f"coverage {coverage:.3f}, median bar/error {ratio:.3g}")


if __name__ == "__main__":
    main()
