"""Fit an axon radius (plus intra-axonal diffusivity and s0) to simulated Rician data.

Protocol (G [mT/m] at delta/Delta [ms]): 40 and 300 at 10/30, 300 at 20/30 and 20/40,
40 and 80 at 10/60 (b up to 86,000 s/mm^2); 16 directions perpendicular to the fibre, 6
at 45 degrees, 2 along it; 4 b = 0.
Run:  python examples/fit_cylinder_radius.py [--small]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from mf_dmri.inverse import CylinderModel, PGSEProtocol, cramer_rao_bound, fit, sample_noise
from mf_dmri.units import ms, mT_per_m, um

SHELLS = [(40, 10, 30), (300, 10, 30), (300, 20, 30), (300, 20, 40), (40, 10, 60), (80, 10, 60)]


def fibre_protocol(perpendicular: int, oblique: int, parallel: int) -> PGSEProtocol:
    a = np.linspace(0, np.pi, perpendicular, endpoint=False)
    b = np.linspace(0, 2 * np.pi, oblique, endpoint=False)
    directions = np.concatenate(
        [
            np.stack([np.cos(a), np.sin(a), 0 * a], 1),
            np.stack([np.cos(b), np.sin(b), np.ones(oblique)], 1) / np.sqrt(2),
            np.tile([[0.0, 0.0, 1.0]], (parallel, 1)),
        ]
    )
    return PGSEProtocol(
        [d * ms for _, d, _ in SHELLS],
        [big * ms for _, _, big in SHELLS],
        [g * mT_per_m for g, _, _ in SHELLS],
        torch.tensor(directions),
        b0_measurements=4,
    )


def main(small: bool = False, snr: float = 30.0, seed: int = 0) -> dict:
    """Simulate, fit and print; returns {radius: (estimate, standard error, CRB)} [m]."""
    protocol = fibre_protocol(6, 2, 1) if small else fibre_protocol(16, 6, 2)
    model = CylinderModel(axis=(0.0, 0.0, 1.0), unit_cutoff=30.0 if small else 50.0)
    forward = model.bind(protocol)
    sigma = 1.0 / snr
    radii = (3 * um,) if small else (2 * um, 5 * um, 10 * um)
    generator = torch.Generator().manual_seed(seed)
    results = {}
    print(f"{protocol.num_measurements} measurements, SNR {snr:g}, Rician noise")
    for radius in radii:
        truth = {"s0": 1.0, "radius": radius, "intra_diffusivity": 1.8e-9}
        clean = forward({k: torch.tensor(v, dtype=torch.float64) for k, v in truth.items()})
        data = sample_noise("rician", clean.detach(), sigma, generator)
        result = fit(forward, data, model.parameters(), likelihood="rician", sigma=sigma)
        bound = cramer_rao_bound(model, truth, protocol, sigma, likelihood="rician")
        estimate, error = result.estimates["radius"], result.standard_error("radius")
        crb = float(bound.standard_deviation("radius"))
        results[radius] = (estimate, error, crb)
        print(
            f"R = {radius / um:5.2f} um: estimate {estimate / um:6.3f} +- {error / um:.3f} um "
            f"(CRB {crb / um:.3f} um), {result.convergence.message}"
        )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="reduced protocol (fast)")
    parser.add_argument("--snr", type=float, default=30.0)
    args = parser.parse_args()
    main(small=args.small, snr=args.snr)
