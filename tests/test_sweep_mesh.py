"""Mesh geometries in sweeps: a meshed sphere (generator and file) against the analytic
sphere (closed-form ball eigenbasis, Grebenkov 2007 Rev. Mod. Phys. 79, 1077), with the
error shrinking under mesh refinement; the eigenbasis cache serves mesh files."""

import numpy as np
import pytest

from mf_dmri.geometry import sphere
from mf_dmri.io.mesh import save_surface
from mf_dmri.io.sweep_cache import DiskBasisCache
from mf_dmri.io.sweep_toml import default_registry, spec_from_toml
from mf_dmri.sweep import build_plan, run_sweep
from mf_dmri.units import um

CONFIG = """
[[geometry]]
shape = "{shape}"
{geometry}
length_scale_um = {length_scale}
[tissue]
diffusivity_um2_per_ms = [1.0, 2.5]
[[acquisition]]
sequence = "pgse"
pulse_duration_ms = 10
pulse_separation_ms = 30
b_s_per_mm2 = [0, 1000, 3000]
directions = 3
"""
COARSE = "radius_um = 3.0\nmesh_size_um = 1.5\nsubdivisions = 2"


class Sink:
    def __init__(self):
        self.rows = {}
        self.bars = {}

    def completed(self):
        return set()

    def write(self, chunk, signals, error_bars):
        self.rows[chunk.row_start] = signals
        self.bars[chunk.row_start] = error_bars


def sweep(shape, geometry, *, length_scale=3.0, base_dir=".", cache=None, sink=None):
    registry = default_registry()
    text = CONFIG.format(shape=shape, geometry=geometry, length_scale=length_scale)
    plan = build_plan(spec_from_toml(text, base_dir=base_dir, registry=registry), registry)
    sink = Sink() if sink is None else sink
    result = run_sweep(plan, sink, registry=registry, cache=cache)
    return np.concatenate([sink.rows[k] for k in sorted(sink.rows)]), result


@pytest.fixture(scope="module")
def analytic():
    return sweep("sphere", "radius_um = 3.0")[0]


@pytest.fixture(scope="module")
def coarse():
    return sweep("mesh_sphere", COARSE)[0]


def test_meshed_sphere_matches_the_analytic_sphere(analytic, coarse):
    assert np.abs(analytic).min() < 0.95  # real diffusion weighting
    assert np.abs(coarse - analytic).max() < 1e-2


def test_mesh_file_gives_the_generator_result_and_is_cached(coarse, tmp_path):
    save_surface(sphere(3 * um, subdivisions=2), tmp_path / "ball.ply", unit=um)
    geometry = 'files = ["ball.ply"]\nunit = "um"\nmesh_size_um = 1.5'
    cache = DiskBasisCache(tmp_path / "cache")
    from_file, first = sweep("mesh", geometry, base_dir=tmp_path, cache=cache)
    again, second = sweep("mesh", geometry, base_dir=tmp_path, cache=cache)
    assert (first.basis_solves, second.basis_solves, second.cache_hits) == (1, 0, 1)
    np.testing.assert_allclose(from_file, coarse, atol=1e-9)
    np.testing.assert_array_equal(again, from_file)


def test_cached_mesh_basis_keeps_its_discretisation_error(tmp_path):
    """A mesh basis read back from the sweep's disk cache carries its mesh and element
    order, so its error bar (P1 versus P2 on the mesh included) is the solved one's (it
    used to come back without its mesh: a smaller bar and a DiscretisationWarning)."""
    save_surface(sphere(3 * um, subdivisions=1), tmp_path / "ball.ply", unit=um)
    geometry = 'files = ["ball.ply"]\nunit = "um"\nmesh_size_um = 1.5'
    cache = DiskBasisCache(tmp_path / "cache")
    solved, cached = Sink(), Sink()
    sweep("mesh", geometry, base_dir=tmp_path, cache=cache, sink=solved)
    sweep("mesh", geometry, base_dir=tmp_path, cache=cache, sink=cached)
    bars = [np.concatenate([s.bars[k] for k in sorted(s.bars)]) for s in (solved, cached)]
    assert bars[0].max() > 1e-4  # a coarse mesh: the discretisation part dominates
    np.testing.assert_array_equal(bars[1], bars[0])


def test_mesh_file_needs_its_unit(tmp_path):
    save_surface(sphere(3 * um, subdivisions=1), tmp_path / "ball.ply", unit=um)
    with pytest.raises(ValueError, match="mesh files: unit must be one of .* metres per file unit"):
        sweep("mesh", 'files = ["ball.ply"]', base_dir=tmp_path)


@pytest.mark.slow  # the refined mesh takes ~20 s on 2 busy cores
def test_refinement_reduces_the_error(analytic, coarse):
    fine = sweep("mesh_sphere", "radius_um = 3.0\nmesh_size_um = 0.75\nsubdivisions = 4")[0]
    coarse_error = np.abs(coarse - analytic).max()
    fine_error = np.abs(fine - analytic).max()
    assert fine_error < coarse_error / 4  # halving h: P1 eigenvalues converge as h^2
