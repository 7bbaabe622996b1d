"""Forward cost of the three propagators against the number of modes, in one run: where
``choose_propagator`` switches (``DENSE_MAX_MODES``, ``SHIFT_INVERT_MODES``).

Basis: Neumann Laplace eigenbasis of the perturbed tetrahedral box of benchmarks/bench_grad.py
(14^3 nodes, 5 x 4 x 3 um), truncated to its first L modes.  100 measurements in random
directions (seed 0), D = 2 um^2/ms: PGSE (delta 10 ms, Delta 40 ms, amplitudes uniform in
[0, 0.2] T/m) and a sampled waveform (16 random samples of 2 ms, a gradient echo, amplitudes
in [0, 0.05] T/m).  Best of two timings of each path; the dense path only up to L = 200.
Writes benchmarks/results/propagators.md.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_propagators.py
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_grad import _mesh  # noqa: E402

from mf_dmri.fem import mesh_eigenbasis  # noqa: E402
from mf_dmri.sequences import PGSE, Acquisition, SampledWaveform  # noqa: E402
from mf_dmri.signal import (  # noqa: E402
    DenseExponential,
    KrylovExponential,
    ShiftInvertExponential,
)
from mf_dmri.signal.propagation import factor_signal  # noqa: E402

MODES = {"PGSE": (20, 40, 60, 87, 120, 200, 300, 400), "sampled": (20, 40, 60, 100)}
DENSE_LIMIT = 200


def _acquisitions() -> dict[str, Acquisition]:
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(100, 3))
    directions = torch.tensor(directions / np.linalg.norm(directions, axis=1, keepdims=True))
    samples = torch.tensor(np.random.default_rng(1).normal(size=16))
    return {
        "PGSE": Acquisition(PGSE(10e-3, 40e-3), directions, torch.tensor(rng.uniform(0, 0.2, 100))),
        "sampled": Acquisition(
            SampledWaveform(samples, 2e-3),
            directions,
            torch.tensor(rng.uniform(0, 0.05, 100)),
            allow_unrefocused=True,
        ),
    }


def _best(propagator, basis, pieces) -> tuple[float, torch.Tensor]:
    best, value = float("inf"), None
    for _ in range(2):
        start = time.perf_counter()
        value = factor_signal(basis, torch.tensor(2e-9), pieces, propagator=propagator)
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    nodes, elements = _mesh(14)
    basis = mesh_eigenbasis(torch.tensor(nodes), elements, max_eigenvalue=2.5e13, order=1)
    lines = [
        "| waveform | modes L | dense [s] | Krylov [s] | shift-invert [s] | "
        "max difference (shift-invert vs dense or Krylov) |",
        "|---" * 6 + "|",
    ]
    for name, acquisition in _acquisitions().items():
        pieces = acquisition.pieces()
        for num_modes in MODES[name]:
            truncated = basis.first_modes(num_modes)
            paths = {"krylov": KrylovExponential(), "shift_invert": ShiftInvertExponential()}
            if num_modes <= DENSE_LIMIT:
                paths["dense"] = DenseExponential()
            times = {label: _best(p, truncated, pieces) for label, p in paths.items()}
            reference = times.get("dense", times["krylov"])[1]
            difference = float((times["shift_invert"][1] - reference).abs().max())
            dense = f"{times['dense'][0]:.3f}" if "dense" in times else "-"
            lines.append(
                f"| {name} | {num_modes} | {dense} | {times['krylov'][0]:.3f} | "
                f"{times['shift_invert'][0]:.3f} | {difference:.1e} |"
            )
            print(lines[-1], flush=True)
    text = (
        "# Propagators: forward time against the number of modes\n\n"
        f"`python benchmarks/bench_propagators.py`, {platform.machine()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average "
        f"{os.getloadavg()[0]:.1f} at the end (shared machine: absolute times inflated, the "
        "paths of a row are timed in one run).  FEM box basis (14^3 nodes), 100 "
        "measurements; best of two timings.\n\n" + "\n".join(lines) + "\n"
    )
    out = ROOT / "benchmarks/results/propagators.md"
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
