"""Mesh cases of the coverage study (validation/coverage_study.py).

Default generated meshes of a sphere, a finite cylinder, an ellipsoid and a bipolar neuron
(:mod:`mf_dmri.geometry`), coarse on purpose (netgen at the surface resolution: a few
hundred tetrahedra) so that the finite-element error is large and the bar must cover it.
Each mesh is solved with P1 and P2 elements at a length scale of 2 um and its signal with
bar (default mesh tolerance 1e-3) is compared with an independent converged reference on
the same polyhedron: P2 elements on the uniformly refined mesh (h / 2) at four times the
cutoff (length scale 1 um).  The polyhedral approximation of the curved surface is not part
of the bar (the same polyhedron is used throughout); its volume error is listed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np
from coverage_runner import measurement_label, run_coverage_case
from skfem import MeshTet

import mf_dmri as mf
from mf_dmri.fem import mesh_eigenbasis
from mf_dmri.fem.resolution import ResolutionWarning
from mf_dmri.geometry import bipolar_neuron, cylinder, ellipsoid, sphere, tetrahedralize
from mf_dmri.signal.compartment import Compartment
from mf_dmri.units import um, um2_per_ms

#: Eigen cutoff length scale of the bases and of the reference [m].
LENGTH_SCALE, REFERENCE_LENGTH_SCALE = 2 * um, 1 * um
MESH_SHAPES = ("sphere", "cylinder", "ellipsoid", "neuron")


def _surface(shape: str):
    if shape == "sphere":
        return sphere(3 * um, subdivisions=2)
    if shape == "cylinder":
        return cylinder(2 * um, 8 * um, segments=12)
    if shape == "ellipsoid":
        return ellipsoid((4 * um, 2.5 * um, 2 * um), subdivisions=2)
    return bipolar_neuron(3 * um, 0.8 * um, 0.5 * um, 16 * um, segments=8)


@cache
def volume_mesh(shape: str):
    """The tetrahedral mesh of ``shape`` (the neuron at 0.8 um so its neurites hold nodes)."""
    edge = 0.8 * um if shape == "neuron" else None
    return tetrahedralize(_surface(shape), length_scale=edge)


@cache
def basis(shape: str, order: int):
    mesh = volume_mesh(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResolutionWarning)
        return mesh_eigenbasis(
            mesh.nodes, mesh.elements, order=order, length_scale=LENGTH_SCALE, label=shape
        )


@cache
def reference_basis(shape: str):
    mesh = volume_mesh(shape)
    refined = MeshTet(mesh.nodes.T, mesh.elements.T).refined()
    return mesh_eigenbasis(refined, order=2, length_scale=REFERENCE_LENGTH_SCALE, label=shape)


@dataclass(frozen=True)
class MeshCase:
    """One mesh case: ``shape``, element ``order``, b-values [s/mm^2], timing name,
    waveform kind, diffusivity [um^2/ms], gradient direction (lab frame)."""

    shape: str
    order: int
    bvalues: tuple[float, ...]
    timing: str
    kind: str
    diffusivity: float
    direction: tuple[float, float, float]

    def label(self) -> str:
        return measurement_label(f"{self.shape} mesh P{self.order}", self)


def draw_mesh_cases(count: int, seed: int = 0) -> list[MeshCase]:
    """``count`` cases cycling over shape x order, with seeded b-values, timing, kind,
    diffusivity and direction."""
    rng = np.random.default_rng(seed + 1)
    directions = ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.6, 0.0, 0.8))
    cases = []
    for index in range(count):
        top = float(rng.choice([1000.0, 3000.0, 10000.0]))
        cases.append(
            MeshCase(
                MESH_SHAPES[index % 4],
                1 + (index // 4) % 2,
                (0.3 * top, top),
                ("short", "long")[int(rng.integers(2))],
                ("pgse", "ogse")[int(rng.integers(2))],
                float(rng.choice([1.0, 2.0, 3.0])),
                directions[int(rng.integers(3))],
            )
        )
    return cases


def run_mesh_case(case: MeshCase, acquisition) -> dict:
    """Signal, bar and true error of one mesh case (``acquisition`` from the case)."""
    pieces = acquisition.pieces()
    rate = case.diffusivity * um2_per_ms
    row, result = run_coverage_case(
        case,
        lambda: Compartment(basis(case.shape, case.order), rate),
        pieces,
        lambda _: mf.signal(Compartment(reference_basis(case.shape), rate), pieces),
    )
    row["discretisation"] = result.discretisation_error.numpy()
    row["polyhedral_error"] = polyhedral_volume_error(case.shape)
    return row


def polyhedral_volume_error(shape: str) -> float:
    """|V_polyhedron / V_curved - 1| of the mesh of ``shape`` (nan for the neuron, whose
    curved volume has no closed form here) [-]: the geometric error outside the bar."""
    exact = {
        "sphere": 4 / 3 * np.pi * (3 * um) ** 3,
        "cylinder": np.pi * (2 * um) ** 2 * 8 * um,
        "ellipsoid": 4 / 3 * np.pi * 4 * um * 2.5 * um * 2 * um,
    }.get(shape)
    if exact is None:
        return float("nan")
    return abs(float(basis(shape, 1).volume) / exact - 1.0)
