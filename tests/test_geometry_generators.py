"""Generated surfaces are closed, outward and converge to the closed-form volumes.

Closed forms: sphere 4/3 pi r^3; ellipsoid 4/3 pi abc; capsule pi r^2 L + 4/3 pi r^3;
torus 2 pi^2 R r^2 (Pappus's centroid theorem); beaded axon pi r0^2 L (1 + a^2/2) over whole
periods; undulating tube pi r^2 x arc length (tube formula, e.g. Gray, "Tubes", 2004, valid
for r * curvature < 1).
"""

import numpy as np
import pytest
from scipy.integrate import quad

from mf_dmri import units
from mf_dmri.geometry import (
    beaded_axon,
    box,
    capsule,
    cylinder,
    cylinder_bundle,
    ellipsoid,
    sphere,
    torus,
    undulating_axon,
    validate_surface,
)

um = units.um


def _rate(errors, factor=2.0):
    """Observed convergence order when the resolution grows by ``factor`` per step."""
    errors = np.abs(np.asarray(errors))
    return np.polyfit(np.log(factor ** np.arange(len(errors))), -np.log(errors), 1)[0]


def _undulating_volume(radius, length, amplitude, wavelength):
    k = 2 * np.pi / wavelength
    arc, _ = quad(lambda z: np.sqrt(1 + (amplitude * k * np.cos(k * z)) ** 2), 0, length, limit=200)
    return np.pi * radius**2 * arc


CASES = {
    "cylinder": (lambda n: cylinder(2 * um, 6 * um, segments=n), np.pi * 4 * 6 * um**3),
    "capsule": (lambda n: capsule(1 * um, 4 * um, segments=n), (np.pi * 4 + 4 / 3 * np.pi) * um**3),
    "torus": (lambda n: torus(3 * um, 1 * um, segments=n), 2 * np.pi**2 * 3 * um**3),
    "beaded": (
        lambda n: beaded_axon(1 * um, 10 * um, 0.3, 5 * um, segments=n),
        np.pi * 10 * (1 + 0.3**2 / 2) * um**3,
    ),
    "undulating": (
        lambda n: undulating_axon(1 * um, 10 * um, 1.5 * um, 10 * um, segments=n),
        _undulating_volume(1 * um, 10 * um, 1.5 * um, 10 * um),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_ring_shapes_converge_at_second_order(name):
    make, exact = CASES[name]
    meshes = [make(n) for n in (12, 24, 48)]
    validate_surface(meshes[1])  # watertight, outward, no self-intersections
    errors = [m.signed_volume() / exact - 1 for m in meshes]
    assert abs(errors[-1]) < 0.01
    assert _rate(errors) == pytest.approx(2.0, abs=0.3)


@pytest.mark.parametrize("shape", ["sphere", "ellipsoid"])
def test_icosphere_shapes_converge_at_second_order(shape):
    if shape == "sphere":
        meshes = [sphere(3 * um, subdivisions=k) for k in (2, 3, 4)]
        exact = 4 / 3 * np.pi * 27 * um**3
    else:
        meshes = [ellipsoid((1 * um, 2 * um, 3 * um), subdivisions=k) for k in (2, 3, 4)]
        exact = 4 / 3 * np.pi * 6 * um**3
    validate_surface(meshes[1])
    errors = [m.signed_volume() / exact - 1 for m in meshes]
    assert _rate(errors) == pytest.approx(2.0, abs=0.2)


def test_box_is_exact_and_closed():
    mesh = box((3 * um, 4 * um, 5 * um), edge_length=0.5 * um)
    validate_surface(mesh)
    assert mesh.signed_volume() == pytest.approx(60 * um**3, rel=1e-12)
    assert mesh.area() == pytest.approx(2 * (12 + 15 + 20) * um**2, rel=1e-12)


def test_undulating_axon_refuses_folding_tube():
    with pytest.raises(ValueError, match="fold"):
        undulating_axon(2 * um, 10 * um, 3 * um, 5 * um)


def test_generators_reject_bad_input():
    with pytest.raises(ValueError, match=r"radius.*\[m\]"):
        cylinder(-1 * um, 1 * um)
    with pytest.raises(ValueError, match="bead_amplitude"):
        beaded_axon(1 * um, 5 * um, 1.2, 1 * um)
    with pytest.raises(ValueError, match="smaller than major"):
        torus(1 * um, 2 * um)


def test_cylinder_bundle_reaches_fraction_without_overlap():
    size = (12 * um, 12 * um, 4 * um)
    bundle = cylinder_bundle(0.45, 1 * um, 6.0, size, seed=3)
    assert bundle.volume_fraction >= 0.45
    gap = 0.1 * um
    exact = np.pi * np.sum(bundle.radii**2) * bundle.axon_length / np.prod(size)
    assert bundle.volume_fraction == pytest.approx(exact, rel=1e-12)
    distance = np.linalg.norm(bundle.centres[:, None] - bundle.centres[None], axis=2)
    needed = bundle.radii[:, None] + bundle.radii[None] + gap
    np.fill_diagonal(distance, np.inf)
    assert np.all(distance >= needed - 1e-15)
    assert np.all(bundle.centres - bundle.radii[:, None] >= gap - 1e-15)
    assert np.all(bundle.centres + bundle.radii[:, None] <= np.array(size[:2]) - gap + 1e-15)
    again = cylinder_bundle(0.45, 1 * um, 6.0, size, seed=3)
    np.testing.assert_array_equal(again.radii, bundle.radii)
    # polygonal axons approach the exact fraction at second order
    fractions = [bundle.mesh_volume_fraction(segments=n) for n in (12, 24, 48)]
    assert _rate(np.array(fractions) / bundle.volume_fraction - 1) == pytest.approx(2, abs=0.3)
    surfaces = bundle.surfaces(segments=12)
    assert len(surfaces) == len(bundle.radii) + 1


def test_cylinder_bundle_reports_jamming():
    with pytest.raises(ValueError, match="jams"):
        cylinder_bundle(0.9, 1 * um, 5.0, (8 * um, 8 * um, 4 * um), seed=0, max_attempts=3000)


def test_cylinder_bundle_gamma_radii_statistics():
    bundle = cylinder_bundle(0.3, 0.5 * um, 4.0, (40 * um, 40 * um, 2 * um), seed=1)
    # sorted-largest-first placement keeps every drawn radius that fits: the mean of the
    # gamma draws (shape 4, mean 0.5 um, sd 0.25 um) within 4 standard errors
    standard_error = 0.25 * um / np.sqrt(len(bundle.radii))
    assert abs(bundle.radii.mean() - 0.5 * um) < 4 * standard_error
