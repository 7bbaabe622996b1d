"""Derivative of the signal with respect to the axon radius (exact, by autograd), checked
against a central finite difference.

Run: python examples/gradient_wrt_radius.py
"""

import torch

from mf_dmri.analytic import cylinder
from mf_dmri.sequences import PGSE, Acquisition
from mf_dmri.signal import Compartment, signal
from mf_dmri.units import ms, s_per_mm2, um, um2_per_ms


def signal_of_radius(radius: torch.Tensor) -> torch.Tensor:
    acq = Acquisition.from_bvalues(
        PGSE(10 * ms, 30 * ms),
        torch.tensor([1000.0, 4000.0]) * s_per_mm2,
        torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]),
    )
    return signal(Compartment(cylinder(radius), 2 * um2_per_ms), acq).real


def main() -> tuple[torch.Tensor, torch.Tensor]:
    radius = torch.tensor(4 * um, dtype=torch.float64, requires_grad=True)
    values = signal_of_radius(radius)
    exact = torch.stack([torch.autograd.grad(v, radius, retain_graph=True)[0] for v in values])
    step = 1e-4 * um
    finite = (
        signal_of_radius(radius.detach() + step) - signal_of_radius(radius.detach() - step)
    ) / (2 * step)
    for b, e, f in zip((1000, 4000), exact, finite):
        print(
            f"b = {b} s/mm^2: dE/dR = {float(e) * um:+.6f} per um "
            f"(finite difference {float(f) * um:+.6f})"
        )
    return exact, finite


if __name__ == "__main__":
    main()
