"""Fitting: radius recovery on a stated protocol, noise estimation, optimisers, starts,
Laplace vs Fisher vs bootstrap uncertainties, bound and identifiability reports, errors."""

import math

import pytest
import torch
from test_inverse_helpers import (  # noqa: F401
    fibre_directions,
    recovery_protocol,
    shell_protocol,
    single_thread,
    small_protocol,
)

from mf_dmri.inverse import CylinderModel, Parameter, fit, sample_noise
from mf_dmri.units import um

pytestmark = pytest.mark.usefixtures("single_thread")
F64 = torch.float64
BVALUES = torch.linspace(0, 3e9, 16, dtype=F64)  # [s/m^2]


def biexponential(values):
    """Cheap two-compartment forward model (real, SI): s0 (f e^-b D1 + (1-f) e^-b D2)."""
    f = values["fraction"]
    return values["s0"] * (
        f * torch.exp(-BVALUES * values["fast"]) + (1 - f) * torch.exp(-BVALUES * values["slow"])
    )


def biexp_parameters():
    return [
        Parameter("s0", 1.1, 0.0, math.inf),
        Parameter("fraction", 0.5, 0.0, 1.0),
        Parameter("fast", 2.0e-9, 0.5e-9, 4e-9),
        Parameter("slow", 0.3e-9, 0.01e-9, 1.0e-9),
    ]


BIEXP_TRUTH = {"s0": 1.0, "fraction": 0.6, "fast": 2.5e-9, "slow": 0.4e-9}


def _noisy(forward, truth, sigma, likelihood, seed):
    clean = forward({k: torch.tensor(v, dtype=F64) for k, v in truth.items()}).detach()
    return sample_noise(likelihood, clean, sigma, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("snr, tolerance", [(100, 0.02), (30, 0.05)])
def test_radius_recovery_rician(snr, tolerance):
    """Protocol (tests/test_inverse_helpers.py): fibre along z, G [mT/m] at delta/Delta
    [ms]: 40 and 300 at 10/30, 300 at 20/30 and 20/40, 40 and 80 at 10/60 (b up to 86,000
    s/mm^2); 16 perpendicular + 6 oblique + 2 parallel directions, 4 b = 0: 148
    measurements.  Unknowns: radius, intra-axonal diffusivity, s0 (Rician noise, sigma
    known).  The Laplace standard error is checked to be well inside the tolerance, so that
    passing is not luck: the tolerance is at least 3 standard errors (measured: errors
    +0.59 / +0.03 / -0.14 % with s.e. 0.47 / 0.34 / 0.35 % at SNR 100, +0.85 / -0.96 /
    +0.58 % with s.e. 1.54 / 1.16 / 1.19 % at SNR 30, for R = 2 / 5 / 10 um)."""
    protocol = recovery_protocol()
    model = CylinderModel(unit_cutoff=50.0)
    forward = model.bind(protocol)
    for radius in (2 * um, 5 * um, 10 * um):
        truth = {"s0": 1.0, "radius": radius, "intra_diffusivity": 1.8e-9}
        data = _noisy(forward, truth, 1 / snr, "rician", seed=int(radius / um) + snr)
        result = fit(forward, data, model.parameters(), likelihood="rician", sigma=1 / snr)
        assert result.convergence.converged, result.convergence.message
        error = result.estimates["radius"] / radius - 1
        assert abs(error) < tolerance, (radius, error)
        assert result.standard_error("radius") / radius < tolerance / 3


def test_noise_level_is_estimated():
    data = _noisy(biexponential, BIEXP_TRUTH, 0.01, "gaussian", seed=1)
    many = torch.cat([data] * 1)
    result = fit(biexponential, many, biexp_parameters(), starts=3)
    assert result.sigma_estimated and "sigma" in result.free_names
    # MLE of sigma from M = 16 points, 4 parameters: sd about sigma / sqrt(2 M)
    assert result.sigma == pytest.approx(0.01, rel=0.5)
    assert result.standard_error("sigma") == pytest.approx(result.sigma / math.sqrt(32), rel=0.2)


def test_rician_noise_level_is_estimated_on_a_large_data_set():
    protocol = small_protocol()
    model = CylinderModel(axis=(0.0, 0.0, 1.0), unit_cutoff=30.0)
    forward = model.bind(protocol)
    truth = {"s0": 1.0, "radius": 5 * um, "intra_diffusivity": 2e-9}
    data = _noisy(forward, truth, 0.05, "rician", seed=3)
    result = fit(forward, data, model.parameters(), likelihood="rician")
    assert result.sigma == pytest.approx(0.05, abs=3 * result.standard_error("sigma"))
    assert result.convergence.converged


def test_multistart_reports_every_start_and_keeps_the_best():
    data = _noisy(biexponential, BIEXP_TRUTH, 0.005, "gaussian", seed=2)
    single = fit(biexponential, data, biexp_parameters(), sigma=0.005)
    multi = fit(biexponential, data, biexp_parameters(), sigma=0.005, starts=5, seed=4)
    assert len(multi.convergence.start_losses) == 5
    assert multi.convergence.final_loss == min(multi.convergence.start_losses)
    assert multi.convergence.final_loss <= single.convergence.final_loss + 1e-9


def test_adam_reaches_the_lbfgs_optimum():
    data = _noisy(biexponential, BIEXP_TRUTH, 0.005, "gaussian", seed=5)
    lbfgs = fit(biexponential, data, biexp_parameters(), sigma=0.005)
    adam = fit(
        biexponential,
        data,
        biexp_parameters(),
        sigma=0.005,
        optimizer="adam",
        max_iterations=4000,
        learning_rate=0.02,
        tolerance=1e-3,
    )
    assert lbfgs.convergence.converged and adam.convergence.optimizer == "adam"
    for name in ("fraction", "fast", "slow"):
        assert adam.estimates[name] == pytest.approx(
            lbfgs.estimates[name], abs=0.2 * lbfgs.standard_error(name)
        )


def test_hessian_fisher_and_bootstrap_uncertainties_agree():
    """At the optimum the observed (Hessian) and expected (Fisher) information agree to
    O(1/sqrt(M)); the parametric bootstrap spread agrees with both within its own sampling
    error (B = 60: about 9% on a standard deviation, allowed 30%)."""
    data = _noisy(biexponential, BIEXP_TRUTH, 0.002, "gaussian", seed=6)
    hessian = fit(biexponential, data, biexp_parameters(), sigma=0.002, bootstrap=60, seed=1)
    fisher = fit(biexponential, data, biexp_parameters(), sigma=0.002, covariance="fisher")
    for i, name in enumerate(hessian.free_names):
        laplace = hessian.standard_error(name)
        assert fisher.standard_error(name) == pytest.approx(laplace, rel=0.15)
        assert hessian.bootstrap.standard_error(i) == pytest.approx(laplace, rel=0.3)
        low, high = hessian.bootstrap.percentile_interval(i)
        assert low < hessian.estimates[name] < high


def test_estimate_on_a_bound_is_reported():
    """Noise-free data with no slow compartment (fraction 1): the fraction goes to its
    upper bound, where the Laplace interval means nothing; the report must say so."""
    clean = biexponential(
        {k: torch.tensor(v, dtype=F64) for k, v in {**BIEXP_TRUTH, "fraction": 1.0}.items()}
    )
    result = fit(biexponential, clean.detach(), biexp_parameters(), sigma=0.01)
    assert "fraction" in result.at_bound
    assert not result.convergence.converged
    assert "bound" in result.convergence.message


def test_unidentifiable_radius_is_reported():
    """Only gradients parallel to the fibre: the radius does not change the signal, the
    Hessian is singular and the covariance is NaN."""
    protocol = shell_protocol([(100, 10, 30), (200, 10, 30)], fibre_directions(0, 0, 3), b0=2)
    model = CylinderModel(unit_cutoff=30.0)
    forward = model.bind(protocol)
    data = _noisy(
        forward, {"s0": 1.0, "radius": 3 * um, "intra_diffusivity": 2e-9}, 0.01, "gaussian", 7
    )
    result = fit(forward, data, model.parameters(), sigma=0.01)
    assert not result.convergence.converged
    assert "identifiable" in result.convergence.message
    assert math.isnan(result.standard_error("radius"))


def test_result_summary_is_complete():
    data = _noisy(biexponential, BIEXP_TRUTH, 0.005, "gaussian", seed=8)
    params = biexp_parameters()
    params[0] = params[0].with_fixed(1.0)
    result = fit(biexponential, data, params, sigma=0.005)
    summary = result.to_dict()
    assert summary["parameters"]["s0"] == {"estimate": 1.0, "fitted": False}
    row = summary["parameters"]["fast"]
    assert row["lower"] < row["estimate"] < row["upper"]
    assert summary["convergence"]["converged"] is True
    with pytest.raises(KeyError, match="was not fitted"):
        result.standard_error("s0")
    with pytest.raises(TypeError):
        result.estimates["fast"] = 0.0  # frozen


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"data": torch.ones(5, dtype=F64)}, ValueError, "same measurements"),
        ({"data": torch.full((16,), math.nan, dtype=F64)}, ValueError, "NaN"),
        ({"data": -torch.ones(16, dtype=F64), "likelihood": "rician"}, ValueError, "magnitude"),
        ({"sigma": 0.0}, ValueError, "sigma must be"),
        ({"sigma": -1.0}, ValueError, "sigma must be"),
        ({"likelihood": "poisson"}, ValueError, "likelihood must be"),
        ({"optimizer": "sgd"}, ValueError, "optimizer must be"),
        ({"covariance": "sandwich"}, ValueError, "covariance must be"),
        ({"starts": 0}, ValueError, "starts must be"),
        ({"bootstrap": -1}, ValueError, "bootstrap must be"),
        ({"parameters": [Parameter("sigma", 1.0, 0, 2)]}, ValueError, "reserved"),
    ],
)
def test_bad_inputs_raise_clear_errors(change, error, message):
    kwargs = {
        "data": torch.ones(16, dtype=F64),
        "parameters": biexp_parameters(),
        "sigma": 0.01,
        **change,
    }
    data, parameters = kwargs.pop("data"), kwargs.pop("parameters")
    with pytest.raises(error, match=message):
        fit(biexponential, data, parameters, **kwargs)


def test_bad_forward_models_raise_clear_errors():
    params = biexp_parameters()
    data = torch.ones(16, dtype=F64)
    with pytest.raises(TypeError, match="complex"):
        fit(lambda v: biexponential(v).to(torch.complex128), data, params, sigma=0.1)
    with pytest.raises(FloatingPointError, match="NaN"):
        fit(lambda v: biexponential(v) * math.nan, data, params, sigma=0.1)
    with pytest.raises(ValueError, match="shape"):
        fit(lambda v: biexponential(v)[None], data, params, sigma=0.1)


class _FirstOrderExp(torch.autograd.Function):
    """exp with a numpy (first-order only) backward, like the mesh eigen-solver's."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return torch.as_tensor(grad.detach().numpy() * torch.exp(x).detach().numpy())


def test_models_without_second_derivatives_get_exact_jacobians_and_fisher_errors():
    """A model built on a first-order-only autograd function: the double-backward Jacobian
    would silently miss terms; the check catches it and the row-by-row Jacobian is exact.
    The fit's Hessian fails its check, so the Fisher information is used (and reported)."""
    from mf_dmri.inverse import jacobian

    def forward(values):
        return values["s0"] * _FirstOrderExp.apply(-BVALUES * values["fast"])

    values = {"s0": torch.tensor(1.2, dtype=F64), "fast": torch.tensor(1e-9, dtype=F64)}
    _, jac = jacobian(forward, values, ["s0", "fast"])
    expected_fast = -1.2 * BVALUES * torch.exp(-BVALUES * 1e-9)
    torch.testing.assert_close(jac[:, 1], expected_fast, rtol=1e-12, atol=0)
    params = [Parameter("s0", 1.1, 0.0, math.inf), Parameter("fast", 2e-9, 1e-10, 5e-9)]
    data = _noisy(forward, {"s0": 1.2, "fast": 1e-9}, 0.01, "gaussian", seed=9)
    result = fit(forward, data, params, sigma=0.01)
    assert "Fisher used" in result.convergence.message
    reference = fit(forward, data, params, sigma=0.01, covariance="fisher")
    assert result.standard_error("fast") == pytest.approx(
        reference.standard_error("fast"), rel=1e-10
    )


def test_progress_counts_starts_and_bootstrap_refits():
    """fit() reports every finished optimisation: the starts, then the bootstrap refits."""
    from mf_dmri.inverse import Parameter, fit

    x = torch.linspace(0, 1, 20, dtype=torch.float64)
    data = 2.0 * x + 0.01 * torch.randn(20, generator=torch.Generator().manual_seed(0))
    seen = []
    fit(
        lambda v: v["a"] * x,
        data,
        [Parameter("a", 1.0, 0.0, 5.0)],
        sigma=0.01,
        starts=2,
        bootstrap=3,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
