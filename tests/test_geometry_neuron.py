"""The generated neuron: shipped file, closed-surface checks, volume against an independent
Monte Carlo estimate of the exact union volume, and a real neuron from navis (slow); the
smooth bipolar neuron: closed, volume converging at second order to the tube formula
(meshed without slivers: tests/test_grad_signal_meshes.py)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mf_dmri import units
from mf_dmri.geometry import (
    SurfaceMesh,
    bipolar_neuron,
    check_surface,
    neuron_skeleton,
    neuron_surface,
    repair_surface,
    tetrahedralize,
    validate_surface,
)
from mf_dmri.geometry.errors import RepairError
from mf_dmri.io.mesh import load_surface

DATA = Path(__file__).parent / "data" / "neuron_seed1.ply"


def _union_volume(skeleton, samples_per_part=40000, seed=0):
    """Karp-Luby estimate of the volume of a union of solids (Karp, Luby & Madras 1989,
    J. Algorithms 10:429): sum over parts of V_k * E[1 / (number of parts containing x)]
    with x uniform in part k.  Exact part volumes: ball 4/3 pi R^3, capsule pi r^2 L +
    4/3 pi r^3."""
    rng = np.random.default_rng(seed)
    parts = [(np.zeros(3), np.zeros(3), skeleton.soma_radius)] + list(
        zip(skeleton.starts, skeleton.ends, skeleton.radii, strict=True)
    )

    def inside(points, part):
        start, end, radius = part
        axis = end - start
        length2 = axis @ axis
        t = np.clip((points - start) @ axis / length2, 0, 1) if length2 > 0 else 0 * points[:, 0]
        return np.linalg.norm(points - start - t[:, None] * axis, axis=1) <= radius

    total = 0.0
    for part in parts:
        start, end, radius = part
        lo = np.minimum(start, end) - radius
        hi = np.maximum(start, end) + radius
        points = rng.uniform(lo, hi, size=(samples_per_part * 8, 3))
        points = points[inside(points, part)][:samples_per_part]
        count = sum(inside(points, other).astype(int) for other in parts)
        length = np.linalg.norm(end - start)
        volume = np.pi * radius**2 * length + 4 / 3 * np.pi * radius**3
        total += volume * np.mean(1.0 / count)
    return total


def test_shipped_neuron_is_valid_and_matches_recipe():
    mesh = load_surface(DATA, unit=units.um)
    report = validate_surface(mesh)
    assert report.n_bodies == 1 and 4e-5 < report.extent < 6e-5
    regenerated = neuron_surface(neuron_skeleton(seed=1, n_neurites=4, branch_levels=1), segments=8)
    assert regenerated.signed_volume() == pytest.approx(mesh.signed_volume(), rel=1e-6)


def test_neuron_volume_converges_to_union_volume():
    skeleton = neuron_skeleton(seed=1, n_neurites=4, branch_levels=1)
    exact = _union_volume(skeleton)
    errors = [neuron_surface(skeleton, segments=n).signed_volume() / exact - 1 for n in (8, 16, 32)]
    assert all(e < 0 for e in errors)  # inscribed polygons lose volume
    assert abs(errors[-1]) < 0.01
    assert abs(errors[1]) / abs(errors[2]) > 2.5  # about second order (4x per doubling)
    # the skeleton's own point test agrees with the estimator's containment
    points = np.random.default_rng(1).normal(scale=10e-6, size=(2000, 3))
    assert skeleton.contains(points).any()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tetgen") is None, reason="tetgen missing")
def test_neuron_tetrahedralises_exactly_with_tetgen():
    mesh = load_surface(DATA, unit=units.um)
    volume_mesh = tetrahedralize(mesh, method="tetgen", thin_part_cells=None)
    assert volume_mesh.quality.volume_error < 1e-9


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("navis") is None or importlib.util.find_spec("pytetwild") is None,
    reason="navis (GPL-3.0, test only) or pytetwild not installed",
)
def test_real_neuron_from_navis():
    import navis

    neuron = navis.example_neurons(1, kind="mesh")
    # navis example meshes are in 8 nm voxel units (neuron.units == "8 nanometer")
    assert str(neuron.units) == "8 nanometer"
    mesh = SurfaceMesh(
        np.asarray(neuron.vertices, dtype=np.float64) * 8 * units.nm, np.asarray(neuron.faces)
    )
    report = check_surface(mesh, allow_multiple_bodies=True)
    assert {"nonmanifold_edges", "self_intersections"} <= set(report.problems)
    try:  # the repaired navis cell has a few detached specks (5 bodies): keep the cell
        repaired, _ = repair_surface(mesh, keep_largest=True)
    except RepairError as exc:  # a few crossings remain: fTetWild tolerates them
        repaired = exc.surface
    diagonal = float(np.linalg.norm(np.ptp(repaired.vertices, axis=0)))
    # the envelope must stay below the thinnest neurites (~0.2 um): 2e-4 x 330 um = 0.07 um
    volume_mesh = tetrahedralize(
        repaired,
        method="tetwild",
        thin_part_cells=None,
        envelope=2e-4 * diagonal,
        length_scale=0.03 * diagonal,
    )
    # reference: the signed (winding-number) volume of the repaired surface
    assert volume_mesh.quality.volume_error < 0.02
    assert volume_mesh.quality.min_dihedral > 1


BIPOLAR = dict(soma_radius=3e-6, neurite_radius=0.8e-6, tip_radius=0.4e-6, length=24e-6)


def _tube_formula_volume(soma_radius, neurite_radius, tip_radius, length):
    """integral of pi r(s)^2 ds over the centreline (Pappus/tube formula: the curvature term
    of the volume element integrates to zero around each ring), by adaptive quadrature."""
    from scipy.integrate import quad

    width = 4 / 3 * soma_radius

    def area(s):
        taper = neurite_radius - (neurite_radius - tip_radius) * abs(s) / (length / 2)
        bulge = np.cos(np.pi * min(abs(s) / width, 1.0) / 2) ** 2
        return np.pi * (taper + (soma_radius - taper) * bulge) ** 2

    half, _ = quad(area, 0, length / 2, points=[width], epsabs=0, epsrel=1e-13)
    return 2 * half


@pytest.mark.parametrize("bend_radius", [None, 15e-6])
def test_bipolar_neuron_volume_converges_to_tube_formula(bend_radius):
    exact = _tube_formula_volume(**BIPOLAR)
    sizes, errors = [], []
    for segments in (12, 24, 48):
        surface = bipolar_neuron(**BIPOLAR, bend_radius=bend_radius, segments=segments)
        report = check_surface(surface)
        assert report.ok, report.messages
        sizes.append(1 / segments)
        errors.append(abs(report.volume - exact) / exact)
    rate = np.polyfit(np.log(sizes), np.log(errors), 1)[0]
    assert errors[-1] < 5e-3 and rate > 1.8, (errors, rate)


def test_bipolar_neuron_rejects_bad_shapes():
    with pytest.raises(ValueError, match="soma_radius > neurite_radius"):
        bipolar_neuron(1e-6, 2e-6, 1e-6, 20e-6)
    with pytest.raises(ValueError, match="bend_radius"):
        bipolar_neuron(3e-6, 1e-6, 0.5e-6, 20e-6, bend_radius=2e-6)
    with pytest.raises(ValueError, match="soma_width"):
        bipolar_neuron(3e-6, 1e-6, 0.5e-6, 20e-6, soma_width=15e-6)


_HAS_OCC = importlib.util.find_spec("netgen") is not None and (
    importlib.util.find_spec("netgen.occ") is not None
)


@pytest.mark.skipif(not _HAS_OCC, reason="netgen.occ is not installed")
def test_csg_neuron_volume_mesh_small():
    """Soma + one unbranched neurite as an OpenCASCADE solid meshed by netgen: the exact CSG
    volume agrees with the independent Karp-Luby estimate, the tetrahedra fill it to 2 %."""
    from mf_dmri.geometry.neuron_occ import neuron_volume_mesh

    skeleton = neuron_skeleton(seed=3, n_neurites=1, branch_levels=0, segment_length=8e-6)
    mesh = neuron_volume_mesh(skeleton, max_edge=1.0 * units.um)
    quality = mesh.quality
    assert quality.surface_volume == pytest.approx(_union_volume(skeleton), rel=0.01)
    assert quality.volume_error < 0.02 and quality.volume < quality.surface_volume
    assert quality.min_dihedral > 3
    with pytest.raises(ValueError, match="max_edge"):
        neuron_volume_mesh(skeleton, max_edge=0.0)


@pytest.mark.slow
@pytest.mark.skipif(not _HAS_OCC, reason="netgen.occ is not installed")
def test_generated_neuron_end_to_end():
    """The shipped neuron's skeleton (seed 1) through netgen (CSG) -> eigenbasis ->
    multi-direction PGSE: volume within 2 %, a valid signal (E(0) = 1, decaying with b)."""
    import torch

    from mf_dmri.fem import mesh_eigenbasis
    from mf_dmri.geometry.neuron_occ import neuron_volume_mesh
    from mf_dmri.sequences import PGSE, multi_shell
    from mf_dmri.signal import Compartment, signal

    skeleton = neuron_skeleton(seed=1, n_neurites=4, branch_levels=1)
    mesh = neuron_volume_mesh(skeleton, max_edge=0.7 * units.um)
    assert mesh.quality.volume_error < 0.02 and mesh.quality.min_dihedral > 3
    assert mesh.quality.surface_volume == pytest.approx(_union_volume(skeleton), rel=0.01)
    basis = mesh_eigenbasis(mesh.nodes, mesh.elements, length_scale=3 * units.um)
    assert int((basis.eigenvalues == 0).sum()) == 1  # one connected cell
    acq = multi_shell(PGSE(10 * units.ms, 30 * units.ms), [0, 1e9, 3e9], 12)
    values = signal(Compartment(basis, 2e-9), acq)
    assert float(values[0].real) == pytest.approx(1.0, abs=1e-12)
    shell1, shell3 = values[1:13].abs(), values[13:25].abs()
    assert torch.all(shell3 < shell1) and torch.all(shell1 < 1)
    # restricted: slower decay than free diffusion exp(-b D)
    assert torch.all(shell1 > np.exp(-1e9 * 2e-9))
