"""The inverse examples run (reduced size) and give sensible numbers."""

import sys
from pathlib import Path

import pytest
from test_inverse_helpers import single_thread  # noqa: F401

from mf_dmri.units import um

pytestmark = pytest.mark.usefixtures("single_thread")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


def test_fit_cylinder_radius_example():
    import fit_cylinder_radius

    results = fit_cylinder_radius.main(small=True)
    for radius, (estimate, error, crb) in results.items():
        assert abs(estimate - radius) < 4 * error
        assert error == pytest.approx(crb, rel=0.3)
        assert radius == pytest.approx(3 * um)


def test_optimise_protocol_example():
    import optimise_protocol

    summary = optimise_protocol.main(small=True)
    assert summary["improvement"] > 3.0  # measured: 15 with the small settings


def test_reconstruct_ellipsoid_example(tmp_path):
    import reconstruct_ellipsoid

    from mf_dmri.io.mesh import load_surface

    summary = reconstruct_ellipsoid.main(small=True, output=str(tmp_path))
    # measured (small settings): Chamfer 0.41 -> 0.15 um, Hausdorff 1.18 -> 0.44 um
    assert summary["after"].chamfer < 0.6 * summary["before"].chamfer
    assert summary["after"].hausdorff < summary["before"].hausdorff
    history = summary["result"].misfit_history
    assert history[-1] < 0.2 * history[0]
    surface = load_surface(tmp_path / "reconstruction.ply", unit=um)
    assert surface.n_vertices == summary["result"].surface.n_vertices
