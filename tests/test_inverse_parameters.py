"""Parameter maps, likelihoods and the Rician Fisher information."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from test_inverse_helpers import single_thread  # noqa: F401

from mf_dmri.inverse import Parameter, ParameterSpace, rician_information
from mf_dmri.inverse.likelihood import gaussian_nll, rician_nll

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize(
    "lower, upper, value",
    [
        (1e-7, 2e-5, 5e-6),
        (0.0, math.inf, 2e-9),
        (-math.inf, 3.0, -4.0),
        (-math.inf, math.inf, -2.5),
    ],
)
def test_parameter_maps_round_trip(lower, upper, value):
    p = Parameter("x", value, lower, upper)
    z = p.to_unconstrained(value)
    assert abs(z) < 10
    back = float(p.to_physical(torch.tensor(z, dtype=torch.float64)))
    assert back == pytest.approx(value, rel=1e-12)


def test_scaled_logit_is_well_scaled():
    """A radius [m] and a diffusivity [m^2/s] both map to order-one variables with order-one
    sensitivity: d x / d z = (upper - lower) s (1 - s)."""
    radius = Parameter("radius", 5e-6, 1e-7, 2e-5)
    diffusivity = Parameter("diffusivity", 2e-9, 1e-10, 3.5e-9)
    space = ParameterSpace((radius, diffusivity))
    z = space.unconstrained().requires_grad_(True)
    values = space.physical(z)
    (dr,) = torch.autograd.grad(values["radius"] / radius.scale, z)
    assert (z.detach().abs() < 3).all()
    assert 0.1 < float(dr[0]) < 0.3


def test_fixed_parameters_are_passed_not_fitted():
    space = ParameterSpace((Parameter("a", 1.0, 0, 2), Parameter("b", 3.0, fixed=True)))
    assert space.free_names == ("a",)
    values = space.physical(space.unconstrained())
    assert float(values["b"]) == 3.0 and float(values["a"]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "r", "initial": 3.0, "lower": 0.0, "upper": 2.0}, "strictly inside"),
        ({"name": "r", "initial": 1.0, "lower": 2.0, "upper": 1.0}, "lower < upper"),
        ({"name": "r", "initial": math.nan}, "must be a number"),
        ({"name": "2r", "initial": 1.0}, "identifier"),
        ({"name": "r", "initial": 0.0}, "give scale"),
        ({"name": "r", "initial": 1.0, "scale": -1.0}, "scale must be"),
    ],
)
def test_bad_parameters_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Parameter(**kwargs)


def test_bad_spaces_raise():
    with pytest.raises(ValueError, match="unique"):
        ParameterSpace((Parameter("a", 1.0), Parameter("a", 2.0)))
    with pytest.raises(ValueError, match="nothing to fit"):
        ParameterSpace((Parameter("a", 1.0, fixed=True),))


def test_gaussian_nll_matches_scipy():
    rng = np.random.default_rng(0)
    y, s = rng.normal(size=20), rng.normal(size=20)
    ours = gaussian_nll(torch.tensor(y), torch.tensor(s), torch.tensor(0.3, dtype=torch.float64))
    assert float(ours) == pytest.approx(-stats.norm.logpdf(y, s, 0.3).sum(), rel=1e-12)


@pytest.mark.parametrize("snr", [0.5, 3.0, 200.0])
def test_rician_nll_matches_scipy(snr):
    """scipy's Rice distribution: y/sigma ~ rice(b = nu/sigma) (Rice 1944)."""
    rng = np.random.default_rng(1)
    sigma, nu = 0.02, 0.02 * snr * rng.uniform(0.5, 1.5, size=15)
    y = stats.rice.rvs(nu / sigma, scale=sigma, random_state=rng)
    expected = -stats.rice.logpdf(y, nu / sigma, scale=sigma).sum()
    ours = rician_nll(torch.tensor(y), torch.tensor(nu), torch.tensor(sigma, dtype=torch.float64))
    assert float(ours) == pytest.approx(expected, rel=1e-10)


def test_rician_information_limits_and_monte_carlo():
    """High SNR: Gaussian values 1/sigma^2 and 2/sigma^2.  nu -> 0: the score is
    nu (y^2 / (2 sigma^4) - 1 / sigma^2) (I1/I0(z) ~ z/2) with y Rayleigh (E y^2 = 2 sigma^2,
    E y^4 = 8 sigma^4), so I_nu = nu^2 / sigma^4, and I_sigma = 4 / sigma^2 (Rayleigh).
    Intermediate SNR: the covariance of the score over samples, with scores by finite
    differences of scipy's Rice log-density (independent)."""
    sigma = 0.1
    info = rician_information(torch.tensor([50 * sigma, 1e-3 * sigma, 1.5 * sigma]), sigma)
    assert float(info[0, 0, 0]) * sigma**2 == pytest.approx(1.0, rel=1e-3)
    assert float(info[0, 1, 1]) * sigma**2 == pytest.approx(2.0, rel=1e-3)
    assert float(info[1, 0, 0]) == pytest.approx((1e-3 * sigma) ** 2 / sigma**4, rel=1e-3)
    assert float(info[1, 1, 1]) * sigma**2 == pytest.approx(4.0, rel=1e-3)
    rng = np.random.default_rng(2)
    nu = 1.5 * sigma
    y = stats.rice.rvs(nu / sigma, scale=sigma, size=400_000, random_state=rng)
    h = 1e-6

    def logpdf(n, s):
        return stats.rice.logpdf(y, n / s, scale=s)

    score_nu = (logpdf(nu + h, sigma) - logpdf(nu - h, sigma)) / (2 * h)
    score_sigma = (logpdf(nu, sigma + h) - logpdf(nu, sigma - h)) / (2 * h)
    scores = np.stack([score_nu, score_sigma], axis=1)
    monte_carlo = torch.tensor(scores.T @ scores / y.size)
    scale = float(info[2].abs().max())
    torch.testing.assert_close(info[2], monte_carlo, rtol=0, atol=0.02 * scale)


def test_rician_information_rejects_bad_sigma():
    with pytest.raises(ValueError, match="sigma must be positive"):
        rician_information(torch.tensor([1.0]), 0.0)
