"""The ladder of the truncation check (mf_dmri/signal/cutoff_ladder.py): two consecutive
changes must pass, and the bar is the larger of the two."""

from __future__ import annotations

import pytest
import torch

import mf_dmri as mf
from mf_dmri.signal.compartment import Compartment
from mf_dmri.signal.cutoff_ladder import climb
from mf_dmri.units import ms, s_per_mm2, um, um2_per_ms


def _levels(values):
    """Levels (modes, signal) with 10, 20, 40, ... modes."""
    return [(10 * 2**k, torch.tensor(v, dtype=torch.float64)) for k, v in enumerate(values)]


def _climb(levels, tolerance):
    return climb(levels, lambda level: level[1], tolerance, lambda level: level[0])


def test_a_change_that_passes_near_a_turn_of_the_error_is_not_trusted_alone():
    # errors of one measurement 2e-6, 2.5e-6, 3e-7, 5e-8 (not monotone at first): the first
    # change, 2 x 5e-7, lies under the error 2.5e-6 of its finer value
    limit = 0.5
    errors = [2e-6, 2.5e-6, 3e-7, 5e-8]
    result = _climb(_levels([[limit + e] for e in errors]), 5e-6)
    assert result.accepted
    assert result.middle[0] == 20 and result.finest[0] == 40
    assert float(result.bar) == pytest.approx(2 * 2.2e-6)  # max(2 x 5e-7, 2 x 2.2e-6)
    assert float(result.bar) >= errors[1]  # the middle value is reported: covered
    # the single-change rule would have stopped at the first pair with a bar of 1e-6


def test_bar_is_the_larger_change_per_measurement():
    values = [[0.30, 0.60], [0.31, 0.59], [0.3105, 0.5902]]
    result = _climb(_levels(values), 1.0)
    expected = torch.maximum(
        2 * (torch.tensor(values[0]) - torch.tensor(values[1])).abs(),
        2 * (torch.tensor(values[1]) - torch.tensor(values[2])).abs(),
    ).to(torch.float64)
    torch.testing.assert_close(result.bar, expected)


def test_levels_holding_the_same_modes_are_skipped():
    levels = [(10, torch.tensor([0.5])), (10, torch.tensor([0.5])), (20, torch.tensor([0.4]))]
    levels += [(40, torch.tensor([0.4]))]
    result = _climb(levels, 1.0)
    assert result.accepted and result.middle[0] == 20 and result.finest[0] == 40


def test_a_ladder_that_ends_first_returns_its_finest_level_unaccepted():
    values = [[0.5], [0.4], [0.35]]
    result = _climb(_levels(values), 1e-3)
    assert not result.accepted and result.finest[0] == 40
    assert float(result.bar) == pytest.approx(0.2)  # max(2 x 0.1, 2 x 0.05)
    one_change = _climb(_levels(values[:2]), 1.0)
    assert not one_change.accepted and float(one_change.bar) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="at least two cutoffs"):
        _climb([(10, torch.tensor([0.5])), (10, torch.tensor([0.5]))], 1.0)


@pytest.mark.parametrize(
    ("shape", "radius_um", "bvalues", "timing", "diffusivity"),
    [
        ("slab", 30.4, (6000.0, 20000.0), (5.0, 15.0), 2.0),
        ("cylinder", 14.7, (300.0, 1000.0), (20.0, 50.0), 3.0),
    ],
)
def test_the_two_misses_of_the_single_change_are_covered(
    shape, radius_um, bvalues, timing, diffusivity
):
    """The two cases where one change missed (validation/coverage_study.md, before the
    ladder): the bar now covers the error against the closed form at 8 x the cutoff."""
    radius = radius_um * um
    domain = mf.slab(2 * radius, normal=(1.0, 0.0, 0.0)) if shape == "slab" else None
    if domain is None:
        domain = mf.cylinder(radius, axis=(0.0, 0.0, 1.0))
    waveform = mf.PGSE(timing[0] * ms, timing[1] * ms)
    acquisition = mf.Acquisition.from_bvalues(
        waveform, [b * s_per_mm2 for b in bvalues], [[1.0, 0.0, 0.0]] * len(bvalues)
    )
    compartment = Compartment(domain, diffusivity * um2_per_ms)
    result = mf.signal_with_error(compartment, acquisition)
    factor = domain.factors[0]
    converged = factor.source.basis(8.0 * result.max_eigenvalues[0], factor.axes, axial=True)
    from dataclasses import replace

    reference = mf.signal(
        Compartment(replace(domain, factors=(converged,)), diffusivity * um2_per_ms),
        acquisition,
    )
    error = (result.signal - reference).abs()
    assert torch.all(error <= result.error_bar), (error, result.error_bar)
    assert result.within_tolerance
