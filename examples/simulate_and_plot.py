"""Simulate PGSE signals of an axon (cylinder) and a cell (sphere) and plot E(b).

Run: python examples/simulate_and_plot.py [--output signal_vs_b.png]
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mf_dmri.analytic import cylinder, sphere  # noqa: E402
from mf_dmri.sequences import PGSE, Acquisition  # noqa: E402
from mf_dmri.signal import Compartment, signal  # noqa: E402
from mf_dmri.units import ms, s_per_mm2, um, um2_per_ms  # noqa: E402


def main(output: str = "signal_vs_b.png", num_b: int = 21) -> dict:
    bvalues = torch.linspace(0, 10000, num_b, dtype=torch.float64) * s_per_mm2
    perpendicular = torch.tensor([[1.0, 0.0, 0.0]]).expand(num_b, 3)
    acq = Acquisition.from_bvalues(PGSE(10 * ms, 30 * ms), bvalues, perpendicular)
    curves = {
        "cylinder R=2 um (perpendicular)": cylinder(2 * um),
        "cylinder R=5 um (perpendicular)": cylinder(5 * um),
        "sphere R=5 um": sphere(5 * um),
    }
    results = {
        name: signal(Compartment(dom, 2 * um2_per_ms), acq).real for name, dom in curves.items()
    }
    fig, ax = plt.subplots()
    for name, values in results.items():
        ax.plot(bvalues / s_per_mm2, values, label=name)
    ax.set(xlabel="b [s/mm^2]", ylabel="E", yscale="log")
    ax.legend()
    fig.savefig(output, dpi=100)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", default="signal_vs_b.png")
    main(parser.parse_args().output)
