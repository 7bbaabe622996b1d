"""Shared pieces of the sweep tests: small specs and a builder that fails once (importable
by Ray workers, which get the tests folder on their PYTHONPATH)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mf_dmri.analytic import cylinder
from mf_dmri.sweep import (
    DEFAULT_REGISTRY,
    AcquisitionBlock,
    GeometryBuilder,
    GeometrySpec,
    Grid,
    SweepSpec,
    TissueSpec,
    Values,
    hemisphere_directions,
)
from mf_dmri.units import ms, s_per_mm2, um, um2_per_ms

#: Large mode cutoff length: small bases, so that the tests run in seconds.
COARSE = 2.0 * um


def small_spec(
    radii=(1.5 * um, 2.5 * um, 3.0 * um),
    diffusivities=(1.0 * um2_per_ms, 2.5 * um2_per_ms),
    t2=(0.05, 0.09),
    *,
    directions: int = 4,
    chunk_rows: int = 3,
    shape: str = "cylinder",
) -> SweepSpec:
    """Cylinders (radius axis) x (D, T2) for 2 PGSE timings."""
    return SweepSpec(
        geometries=(
            GeometrySpec(
                shape,
                {"radius": Values(radii), "length_scale": Values((COARSE,))},
                {"axis": (0.3, 0.0, 1.0)},
            ),
        ),
        tissue=TissueSpec({"diffusivity": Values(diffusivities), "t2": Values(t2)}),
        acquisitions=(
            AcquisitionBlock(
                "pgse",
                (8 * ms, 12 * ms),
                (25 * ms, 30 * ms),
                (0.0, 1000 * s_per_mm2, 3000 * s_per_mm2),
                tuple(map(tuple, hemisphere_directions(directions))),
                timings_combine="zip",
            ),
        ),
        chunk_rows=chunk_rows,
    )


def acceptance_spec(chunk_rows: int = 10) -> SweepSpec:
    """10 geometries x 100 tissue points = 1,000 rows x 100 measurements."""
    return SweepSpec(
        geometries=(
            GeometrySpec(
                "cylinder",
                {"radius": Grid(1.0 * um, 3.0 * um, 10), "length_scale": Values((COARSE,))},
            ),
        ),
        tissue=TissueSpec(
            {"diffusivity": Grid(1.0 * um2_per_ms, 3.0 * um2_per_ms, 5), "t2": Grid(0.04, 0.12, 20)}
        ),
        acquisitions=(
            AcquisitionBlock(
                "pgse",
                (10 * ms,),
                (30 * ms,),
                (0.0, 1000 * s_per_mm2, 2000 * s_per_mm2, 3000 * s_per_mm2),
                tuple(map(tuple, hemisphere_directions(33))),
            ),
        ),
        chunk_rows=chunk_rows,
    )


def flaky_cylinder(marker_dir: str, parameters, options, plausibility):
    """Cylinder builder that raises the first time it sees each radius (marker files)."""
    key = hashlib.sha256(repr(sorted(parameters.items())).encode()).hexdigest()[:16]
    marker = Path(marker_dir) / f"failed_{key}"
    if not marker.exists():
        marker.write_text("failed once")
        raise RuntimeError("injected failure (first attempt)")
    return DEFAULT_REGISTRY["cylinder"].build(parameters, options, plausibility)


def killing_cylinder(marker_dir: str, parameters, options, plausibility):
    """Cylinder builder that kills its own process (SIGKILL: a crashed Ray worker) the first
    time it sees each radius (marker files)."""
    import os
    import signal

    key = hashlib.sha256(repr(sorted(parameters.items())).encode()).hexdigest()[:16]
    marker = Path(marker_dir) / f"killed_{key}"
    if not marker.exists():
        marker.write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)
    return DEFAULT_REGISTRY["cylinder"].build(parameters, options, plausibility)


def counting_registry(counter: list):
    """DEFAULT_REGISTRY whose cylinder builder appends to ``counter`` on every call."""

    def build(parameters, options, plausibility):
        counter.append(dict(parameters))
        return {
            "intra": cylinder(
                parameters["radius"],
                options.get("axis", (0, 0, 1)),
                length_scale=parameters["length_scale"],
            )
        }

    base = DEFAULT_REGISTRY["cylinder"]
    return DEFAULT_REGISTRY.with_builder(
        GeometryBuilder("cylinder", build, base.parameters, base.required, base.options)
    )


class MemorySink:
    """Keeps every written chunk's signals, error bars and first row by chunk index."""

    def __init__(self):
        self.signals, self.bars, self.row_starts = {}, {}, {}

    def completed(self):
        return set(self.signals)

    def write(self, chunk, signals, error_bars):
        assert chunk.index not in self.signals, "a chunk was written twice"
        self.signals[chunk.index], self.bars[chunk.index] = signals, error_bars
        self.row_starts[chunk.index] = chunk.row_start

    def matrix(self, plan):
        """The (rows, measurements) complex table of the written chunks (zero elsewhere)."""
        out = np.zeros((plan.num_rows, plan.measurements.count), dtype=complex)
        for index, signals in self.signals.items():
            start = self.row_starts[index]
            out[start : start + len(signals)] = signals
        return out


def coupled_spec(
    permeabilities=(0.0, 1e-4),
    *,
    diffusivity_intra=1.0 * um2_per_ms,
    t2=(0.08, 0.05),
    relaxivity=1e-5,
) -> SweepSpec:
    """sphere_in_sphere (ball 'intra' of radius 2 um in a shell 'extra' to 4 um, coarse)
    x permeability [m/s]; D = 2 um^2/ms outside; T2 (extra, intra) [s] or one value;
    spin density 0.7 in the ball; surface relaxivity [m/s] on the outer sphere; PGSE
    10/30 ms at b = 0, 1000, 3000 s/mm^2 along x and (0, 0.6, 0.8)."""
    t2_axes = (
        {"t2": Values((t2[0],)), "intra.t2": Values((t2[1],))}
        if isinstance(t2, tuple)
        else {"t2": Values((t2,))}
    )
    return SweepSpec(
        geometries=(
            GeometrySpec(
                "sphere_in_sphere",
                {
                    "inner_radius": Values((2 * um,)),
                    "outer_radius": Values((4 * um,)),
                    "length_scale": Values((2.5 * um,)),
                    "mesh_size": Values((2.0 * um,)),
                },
                {"subdivisions": 1},
            ),
        ),
        tissue=TissueSpec(
            {
                "diffusivity": Values((2.0 * um2_per_ms,)),
                "permeability": Values(tuple(permeabilities)),
                "intra.diffusivity": Values((diffusivity_intra,)),
                "intra.spin_density": Values((0.7,)),
                "extra.surface_relaxivity": Values((relaxivity,)),
                **t2_axes,
            }
        ),
        acquisitions=(
            AcquisitionBlock(
                "pgse",
                (10 * ms,),
                (30 * ms,),
                (0.0, 1000 * s_per_mm2, 3000 * s_per_mm2),
                ((1.0, 0.0, 0.0), (0.0, 0.6, 0.8)),
            ),
        ),
    )
