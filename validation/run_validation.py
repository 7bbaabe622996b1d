"""Regenerate validation/report.md: analytic matrix-formalism (MF) signals against the
Gaussian phase approximation (GPA), the narrow-pulse limits, and their own convergence in
the number of modes.

Usage: python validation/run_validation.py [--output validation/output]
Writes report.md (tables) and PNG figures next to it (default: validation/output/, with
the report also copied to validation/report.md).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from mf_dmri.analytic import cylinder, slab, sphere  # noqa: E402
from mf_dmri.analytic.gpa import gpa_pgse_cylinder, gpa_pgse_slab, gpa_pgse_sphere  # noqa: E402
from mf_dmri.analytic.narrow_pulse import (  # noqa: E402
    narrow_pulse_cylinder,
    narrow_pulse_slab,
    narrow_pulse_sphere,
)
from mf_dmri.sequences.pieces import GradientPieces  # noqa: E402
from mf_dmri.signal import Compartment, signal  # noqa: E402
from mf_dmri.units import GAMMA_PROTON, ms, s_per_mm2, um  # noqa: E402

R, D = 5 * um, 2e-9
SHAPES = {
    "slab (width 2R)": (
        lambda **k: slab(2 * R, **k),
        lambda g, d, s: gpa_pgse_slab(g, d, s, 2 * R, D),
        lambda q, s: narrow_pulse_slab(q, s, 2 * R, D),
    ),
    "cylinder (perpendicular)": (
        lambda **k: cylinder(R, **k),
        lambda g, d, s: gpa_pgse_cylinder(g, d, s, R, D),
        lambda q, s: narrow_pulse_cylinder(q, s, R, D),
    ),
    "sphere": (
        lambda **k: sphere(R, **k),
        lambda g, d, s: gpa_pgse_sphere(g, d, s, R, D),
        lambda q, s: narrow_pulse_sphere(q, s, R, D),
    ),
}


def pgse(delta: float, big_delta: float, amplitudes: np.ndarray) -> GradientPieces:
    g = torch.tensor(np.asarray(amplitudes, float))[:, None] * torch.tensor([1.0, 0.0, 0.0])
    return GradientPieces(
        torch.tensor([delta, big_delta - delta, delta]),
        torch.stack([g, torch.zeros_like(g), -g], dim=1),
    )


def amplitude(bvalues: np.ndarray, delta: float, big_delta: float) -> np.ndarray:
    return np.sqrt(bvalues / (GAMMA_PROTON**2 * delta**2 * (big_delta - delta / 3)))


def mf(domain, pieces: GradientPieces) -> np.ndarray:
    return signal(Compartment(domain, D), pieces).real.numpy()


def table_mf_vs_gpa(lines: list[str], out: Path) -> None:
    bvalues = np.array([0, 500, 1000, 2000, 4000, 7000, 10000, 20000.0]) * s_per_mm2
    delta, big_delta = 10 * ms, 50 * ms
    g = amplitude(bvalues, delta, big_delta)
    fig, ax = plt.subplots(figsize=(6, 4))
    lines += [
        "## MF vs GPA (PGSE delta/Delta = 10/50 ms, R = 5 um, D = 2 um^2/ms)",
        "",
        "| shape | b [s/mm^2] | MF | GPA | MF - GPA |",
        "|---|---|---|---|---|",
    ]
    for name, (builder, gpa, _) in SHAPES.items():
        e_mf = mf(builder(), pgse(delta, big_delta, g))
        e_gpa = np.where(g > 0, gpa(np.maximum(g, 1e-30), delta, big_delta), 1.0)
        for b, x, y in zip(bvalues / s_per_mm2, e_mf, e_gpa):
            lines.append(f"| {name} | {b:.0f} | {x:.8f} | {y:.8f} | {x - y:+.2e} |")
        ax.plot(bvalues / s_per_mm2, e_mf, "o-", label=f"{name} MF")
        ax.plot(bvalues / s_per_mm2, e_gpa, "k--", lw=0.8)
    ax.set(xlabel="b [s/mm^2]", ylabel="E", yscale="log", title="MF (markers) vs GPA (dashed)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "mf_vs_gpa.png", dpi=120)
    plt.close(fig)
    lines += ["", "![MF vs GPA](mf_vs_gpa.png)", ""]


def gpa_slope(lines: list[str]) -> None:
    bvalues = np.array([25, 50, 100, 200, 400.0]) * s_per_mm2
    g = amplitude(bvalues, 10 * ms, 50 * ms)
    lines += ["## Low-b agreement: |MF - GPA| ~ b^p", "", "| shape | fitted p |", "|---|---|"]
    for name, (builder, gpa, _) in SHAPES.items():
        diff = np.abs(mf(builder(), pgse(10 * ms, 50 * ms, g)) - gpa(g, 10 * ms, 50 * ms))
        lines.append(f"| {name} | {np.polyfit(np.log(bvalues), np.log(diff), 1)[0]:.3f} |")
    lines.append("")


def narrow_pulse(lines: list[str], out: Path) -> None:
    q = np.array([1e5, 2e5, 4e5, 6e5])
    separation = 20 * ms
    deltas = np.array([2e-3, 1e-3, 4e-4, 2e-4, 1e-4])
    lines += [
        "## Narrow-pulse limit (Delta = 20 ms, q = gamma G delta fixed)",
        "",
        "| shape | delta [ms] | max abs error vs narrow-pulse formula |",
        "|---|---|---|",
    ]
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, (builder, _, narrow) in SHAPES.items():
        errors = []
        for delta in deltas:
            got = mf(builder(), pgse(delta, separation, q / (GAMMA_PROTON * delta)))
            errors.append(np.abs(got - narrow(q, separation)).max())
            lines.append(f"| {name} | {delta / ms:g} | {errors[-1]:.2e} |")
        slope = np.polyfit(np.log(deltas[-3:]), np.log(errors[-3:]), 1)[0]
        ax.loglog(deltas / ms, errors, "o-", label=f"{name} (slope {slope:.2f})")
    ax.set(xlabel="pulse duration [ms]", ylabel="max |MF - narrow pulse|")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "narrow_pulse.png", dpi=120)
    plt.close(fig)
    lines += ["", "![narrow pulse](narrow_pulse.png)", ""]


def convergence(lines: list[str], out: Path) -> None:
    cutoffs = np.array([50, 100, 200, 400, 800.0])
    reference_cutoff = 1600.0
    timings = [(1 * ms, 40 * ms), (10 * ms, 50 * ms), (30 * ms, 40 * ms)]
    bvalues = np.array([1000, 4000, 10000.0]) * s_per_mm2
    lines += [
        "## Convergence in the number of modes (b <= 10,000 s/mm^2)",
        "",
        "Error: max over b and timings of |E(cutoff) - E(cutoff = 1600/R^2)|. "
        "Cutoff in units of 1/R^2 (slab: of 1/(2R)^2 x 4).",
        "",
        "| shape | cutoff R^2 lambda_max | modes L | max error | time [s] |",
        "|---|---|---|---|---|",
    ]
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, (builder, _, _) in SHAPES.items():
        pieces = [pgse(d, s, amplitude(bvalues, d, s)) for d, s in timings]
        ref = [mf(builder(max_eigenvalue=reference_cutoff / R**2), p) for p in pieces]
        errors, counts = [], []
        for c in cutoffs:
            domain = builder(max_eigenvalue=c / R**2)
            start = time.perf_counter()
            err = max(np.abs(mf(domain, p) - r).max() for p, r in zip(pieces, ref))
            elapsed = time.perf_counter() - start
            errors.append(err)
            counts.append(domain.factors[0].num_modes)
            lines.append(f"| {name} | {c:g} | {counts[-1]} | {err:.2e} | {elapsed:.3f} |")
        rate = np.polyfit(np.log(cutoffs[2:]), np.log(errors[2:]), 1)[0]
        lines.append(f"| {name} | fitted rate: error ~ cutoff^{rate:.2f} | | | |")
        ax.loglog(counts, errors, "o-", label=name)
    ax.set(xlabel="number of modes L", ylabel="max |E - E_ref|")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "convergence.png", dpi=120)
    plt.close(fig)
    lines += ["", "![convergence](convergence.png)", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default=str(Path(__file__).parent / "output"))
    args = parser.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# mf_dmri validation report (analytic shapes)",
        "",
        "Generated by `python validation/run_validation.py`.  References: Neuman 1974 "
        "(cylinder/slab GPA), Murday and Cotts 1968 (sphere GPA), Balinov et al. 1993, "
        "Tanner and Stejskal 1968, Callaghan 1995 (narrow pulse).",
        "",
    ]
    for section in (table_mf_vs_gpa, gpa_slope, narrow_pulse, convergence):
        if section is gpa_slope:
            section(lines)
        else:
            section(lines, out)
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    for png in out.glob("*.png"):
        shutil.copy(png, Path(__file__).parent / png.name)
    shutil.copy(report, Path(__file__).parent / "report.md")
    print(f"wrote {report}")


if __name__ == "__main__":
    main()
