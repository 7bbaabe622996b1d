"""The inverse examples run (reduced size) and give sensible numbers."""

import json
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


def check_axon_outputs(folder, tag, summary):
    from mf_dmri.io.mesh import load_surface

    surface = load_surface(folder / f"{tag}_reconstruction.ply", unit=um)
    assert surface.n_vertices == summary.result.surface.n_vertices
    assert (folder / f"{tag}.png").stat().st_size > 10_000
    history = json.loads((folder / f"{tag}_history.json").read_text())
    assert len(history["loss"]) == len(summary.result.loss_history)


@pytest.mark.slow
def test_reconstruct_beaded_axon_example(tmp_path):
    import reconstruct_beaded_axon

    summary = reconstruct_beaded_axon.main(small=True, output=str(tmp_path))
    # measured (small settings, noise-free): Chamfer 0.344 -> 0.074 um (the space's best:
    # 0.072 um), volume error -0.9 %
    assert summary.after.chamfer < 0.4 * summary.before.chamfer
    assert summary.after.chamfer < 1.5 * summary.best_possible.chamfer
    assert abs(summary.result_volume / summary.target_volume - 1) < 0.05
    check_axon_outputs(tmp_path, "beaded_axon_noise_free", summary)


@pytest.mark.slow
def test_reconstruct_undulating_axon_example(tmp_path):
    import reconstruct_undulating_axon

    summary = reconstruct_undulating_axon.main(small=True, output=str(tmp_path))
    # measured (small settings, noise-free): Chamfer 0.706 -> 0.123 um (the space's best:
    # 0.092 um), Hausdorff 2.01 -> 0.68 um
    assert summary.after.chamfer < 0.3 * summary.before.chamfer
    assert summary.after.hausdorff < 0.5 * summary.before.hausdorff
    check_axon_outputs(tmp_path, "undulating_axon_noise_free", summary)
