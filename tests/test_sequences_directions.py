"""Direction schemes: unit norms, uniformity, electrostatic optimum, determinism, checks."""

import math

import pytest
import torch

from mf_dmri.sequences import (
    check_unit_vectors,
    electrostatic_directions,
    electrostatic_energy,
    fibonacci_sphere,
)
from mf_dmri.sequences.directions import _energy_and_gradient

F64 = torch.float64


@pytest.mark.parametrize("count", [1, 7, 200])
@pytest.mark.parametrize("hemisphere", [False, True])
def test_fibonacci_sphere_is_unit_and_uniform(count, hemisphere):
    points = fibonacci_sphere(count, hemisphere=hemisphere)
    assert points.shape == (count, 3) and points.dtype == F64
    assert torch.allclose(points.norm(dim=-1), torch.ones(count, dtype=F64), atol=1e-14)
    if hemisphere:
        assert bool((points[:, 2] > 0).all())
    if count == 200:
        # second moment of a uniform distribution on the sphere (or half sphere) is I/3
        second_moment = points.T @ points / count
        assert torch.allclose(second_moment, torch.eye(3, dtype=F64) / 3, atol=5e-3)
        if not hemisphere:
            assert float(points.mean(0).norm()) < 5e-3


def test_electrostatic_six_directions_reach_the_icosahedron():
    # The antipodally symmetric Coulomb optimum for 6 axes is the 6 diagonals of the
    # icosahedron: every pair of axes at arccos(1/sqrt 5) = 63.43 degrees (Jones et al.,
    # MRM 42, 515, 1999).
    points = electrostatic_directions(6, seed=1)
    cosines = (points @ points.T).abs()
    off_diagonal = cosines[~torch.eye(6, dtype=torch.bool)]
    assert torch.allclose(off_diagonal, torch.full_like(off_diagonal, 1 / math.sqrt(5)), atol=1e-6)


def test_electrostatic_directions_are_deterministic_half_sphere_and_lower_energy():
    first = electrostatic_directions(15, seed=4)
    second = electrostatic_directions(15, seed=4)
    assert torch.equal(first, second)
    assert not torch.equal(first, electrostatic_directions(15, seed=5))
    assert torch.allclose(first.norm(dim=-1), torch.ones(15, dtype=F64), atol=1e-14)
    assert bool((first[:, 2] >= 0).all())
    # lower energy than the closed-form Fibonacci half-sphere set of the same size
    assert electrostatic_energy(first) < electrostatic_energy(fibonacci_sphere(15, hemisphere=True))
    assert electrostatic_directions(1).shape == (1, 3)


def test_energy_gradient_matches_autograd():
    vectors = torch.randn(9, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    energy, gradient = _energy_and_gradient(vectors.numpy().ravel())
    variables = vectors.clone().requires_grad_(True)
    reference = electrostatic_energy(variables / variables.norm(dim=-1, keepdim=True))
    reference.backward()
    assert energy == pytest.approx(float(reference.detach()), rel=1e-13)
    assert torch.allclose(
        torch.as_tensor(gradient).view(9, 3), variables.grad, rtol=1e-10, atol=1e-12
    )


def test_check_unit_vectors_accepts_units_and_masked_zeros():
    directions = torch.tensor([[1.0, 0, 0], [0, 0, 0]], dtype=F64)
    assert check_unit_vectors(directions, allow_zero=torch.tensor([False, True])) is directions
    with pytest.raises(ValueError, match=r"entry \(1,\) is the zero vector"):
        check_unit_vectors(directions)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: check_unit_vectors([[1.0, 1.0, 0.0]]), ValueError, "normalise"),
        (lambda: check_unit_vectors([1.0, 0.0]), ValueError, r"shape \(\.\.\., 3\)"),
        (lambda: check_unit_vectors([[float("nan"), 0, 0]]), ValueError, "NaN"),
        (lambda: fibonacci_sphere(0), ValueError, "positive integer"),
        (lambda: fibonacci_sphere(2.5), TypeError, "positive integer"),
        (lambda: electrostatic_directions(-3), ValueError, "positive integer"),
        (lambda: electrostatic_directions(True), TypeError, "positive integer"),
    ],
)
def test_bad_direction_inputs_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()
