"""Acquisition functions: how much a run at a candidate decision is worth.

Conventions: the metric is **minimized** (pass negated values for metrics where higher is
better); every acquisition returns a value where **higher is better**. Inputs are posterior
means and standard deviations in the units of the metric (see :func:`recipes_jax.gp.predict`),
so these functions broadcast over any shape and are ``jit``/``vmap``/``grad``-friendly.

Multi-fidelity acquisitions take a :class:`recipes_jax.gp.Posterior` and encoded decisions
(see ``Space.encode``): a candidate at a cheap fidelity is valued by what it teaches about the
target fidelity.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfcx, log_ndtr, ndtr

from recipes_jax import gp, kernels

__all__ = [
    "augmented_expected_improvement",
    "cost_cooled",
    "cost_cooling_exponent",
    "expected_improvement",
    "knowledge_gradient",
    "log_expected_improvement",
    "log_h",
    "log_probability_of_improvement",
    "probability_of_improvement",
    "target_correlation",
    "upper_confidence_bound",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)


def _std_floor(std):
    std = jnp.asarray(std)
    return jnp.maximum(std, jnp.sqrt(jnp.finfo(jnp.result_type(std, float)).tiny))


def _h(z):
    """phi(z) + z Phi(z): EI of a unit-variance Gaussian with improvement threshold z."""
    return jnp.exp(-0.5 * z * z - _LOG_SQRT_2PI) + z * ndtr(z)


def log_h(z: jax.Array) -> jax.Array:
    """log(phi(z) + z Phi(z)), accurate for all z (float32 and float64).

    For z > -1 the direct form is fine. Below, phi(z) + z Phi(z) = phi(z) (1 - |z| m(z)) with
    Mills' ratio m(z) = sqrt(pi/2) erfcx(-z/sqrt 2); the bracket is computed as
    ``-expm1(log(|z| m(z)))`` to keep its tiny value accurate. Further out (z below -10 in
    float32, -30 in float64) that bracket, about 1/z^2, nears the rounding of
    ``log(|z| m(z))``, so it comes from its asymptotic series
    ``1/z^2 (1 - 3/z^2 + 15/z^4 - ...)`` (nine terms: exact to rounding there). Before
    2026-12-06 the series was used only past -1/sqrt(eps), and float32 gave -inf (NaN
    gradients) at half the points between z = -1333 and -2896, and 3-6% gradient errors near
    z = -1000. The switch points also keep clear of a flaw of ``jax.scipy.special.erfcx``
    (jax 0.10): it returns 0 for x in about [9.19, 9.42] in float32 and [26.54, 26.64] in
    float64 (z near -13.1 and -37.6), which gave wrong values and NaN gradients there.
    """
    z = jnp.asarray(z)
    dtype = jnp.result_type(z, float)
    z = z.astype(dtype)
    series_below = 10.0 if jnp.finfo(dtype).eps > 1e-10 else 30.0
    # each branch is evaluated where it is not used too: clamped inputs keep it (and so the
    # gradients) finite there. The clamps are `where`s, not min / max, whose gradient at a tie
    # is halved (it was at z = -1).
    upper = jnp.log(_h(jnp.where(z >= -1.0, z, -1.0)))
    zt = jnp.where(z < -1.0, z, -1.0)
    zm = jnp.where(zt > -series_below, zt, -series_below)
    log_mills = jnp.log(-zm) + jnp.log(erfcx(-zm / math.sqrt(2.0)) * _SQRT_HALF_PI)
    middle = -0.5 * zm * zm - _LOG_SQRT_2PI + jnp.log(-jnp.expm1(log_mills))
    zs = jnp.where(zt <= -series_below, zt, -series_below)
    inv = 1.0 / (zs * zs)
    terms = 0.0
    for coefficient in reversed(_TAIL_SERIES):  # Horner: sum_k c_k inv^k, k = 1..8
        terms = inv * (coefficient + terms)
    far = -0.5 * zs * zs - _LOG_SQRT_2PI - 2.0 * jnp.log(-zs) + jnp.log1p(terms)
    tail = jnp.where(zt <= -series_below, far, middle)
    return jnp.where(z >= -1.0, upper, tail)


#: (-1)^k (2k+1)!! for k = 1..8: 1 - |z| m(z) = 1/z^2 (1 + sum_k c_k / z^(2k)) as z -> -inf.
_TAIL_SERIES = tuple((-1) ** k * math.prod(range(1, 2 * k + 2, 2)) for k in range(1, 9))


def expected_improvement(mean, std, best):
    """E[max(best - f, 0)] for f ~ N(mean, std^2) (minimization)."""
    std = _std_floor(std)
    return std * _h((best - mean) / std)


def log_expected_improvement(mean, std, best):
    """log of :func:`expected_improvement`, finite and accurate far in the tail (z = -40 and
    beyond), so candidates stay ranked where plain EI underflows to 0."""
    std = _std_floor(std)
    return jnp.log(std) + log_h((best - mean) / std)


def probability_of_improvement(mean, std, best):
    """P[f < best] for f ~ N(mean, std^2)."""
    return ndtr((best - mean) / _std_floor(std))


def log_probability_of_improvement(mean, std, best):
    """log P[f < best], stable in the tail."""
    return log_ndtr((best - mean) / _std_floor(std))


def upper_confidence_bound(mean, std, beta=2.0):
    """Optimism in the face of uncertainty for minimization: ``-(mean - sqrt(beta) std)``."""
    return -(mean - jnp.sqrt(beta) * std)


def cost_cooling_exponent(spent, budget, initial_spent=0.0):
    """The paper's cost-cooling exponent alpha (as in CArBO, Lee et al. 2020): 1 while only
    the initial design has been paid for, decaying linearly to 0 as the budget is spent.

    ``alpha = clip((budget - spent) / (budget - initial_spent), 0, 1)``; all in cost units.
    """
    span = jnp.maximum(jnp.asarray(budget) - initial_spent, 1e-12)
    return jnp.clip((jnp.asarray(budget) - spent) / span, 0.0, 1.0)


def cost_cooled(acquisition, cost, alpha, *, log_space: bool = False):
    """Cost-aware acquisition ``a / cost^alpha`` (or ``log a - alpha log cost`` when
    ``log_space``, e.g. for :func:`log_expected_improvement`). ``cost`` > 0 in any unit."""
    if log_space:
        return acquisition - alpha * jnp.log(cost)
    return acquisition / jnp.power(cost, alpha)


def target_correlation(post: gp.Posterior, x: jax.Array, x_target: jax.Array):
    """Posterior correlation [Q] between the latent values at x [Q, D] and x_target [Q, D]
    (row by row), plus their posterior variances; returns ``(corr, var_x, var_target)`` with
    variances in standardized units."""
    _, prior_x, Vx = gp.project(post, x)
    _, prior_t, Vt = gp.project(post, x_target)
    prior_cross = post.amplitude * jax.vmap(post.kernel.evaluate)(x, x_target)
    var_x, var_t = gp.posterior_variance(prior_x, Vx), gp.posterior_variance(prior_t, Vt)
    cov = prior_cross - jnp.sum(Vx * Vt, axis=1)
    tiny = jnp.finfo(cov.dtype).tiny
    corr = cov / jnp.sqrt(jnp.maximum(var_x * var_t, tiny))
    return jnp.clip(corr, -1.0, 1.0), var_x, var_t


def augmented_expected_improvement(post: gp.Posterior, x, x_target, best):
    """EI projected to the target fidelity (augmented EI, Huang et al. 2006), [Q].

    The value of observing decision x [Q, D] (a cheap fidelity) is the EI of the same mixture
    at the target fidelity x_target [Q, D], discounted by how strongly the cheap observation
    is correlated with the target value and by how much of it would be noise:

        EI_target(x_target) * corr(f(x), f(x_target)) * (1 - sqrt(noise / (var(x) + noise)))

    ``best`` is the incumbent (metric units, minimization). Combine with :func:`cost_cooled`
    for the cost trade-off.
    """
    mean_t, var_t = gp.predict(post, x_target)
    ei = expected_improvement(mean_t, jnp.sqrt(var_t), best)
    corr, var_x, _ = target_correlation(post, x, x_target)
    noise_factor = 1.0 - jnp.sqrt(post.noise / (var_x + post.noise))
    return ei * jnp.maximum(corr, 0.0) * noise_factor


def _gauss_hermite(num_points: int, dtype):
    nodes, weights = np.polynomial.hermite_e.hermegauss(num_points)
    return jnp.asarray(nodes, dtype), jnp.asarray(weights / np.sqrt(2.0 * np.pi), dtype)


def knowledge_gradient(
    post: gp.Posterior,
    x: jax.Array,
    x_target_set: jax.Array,
    x_own_target: jax.Array | None = None,
    *,
    num_quadrature: int = 32,
):
    """Discrete multi-fidelity knowledge gradient (Wu & Frazier 2017, on a discretized target),
    [Q] in metric units: the expected drop of the best posterior mean at the target after
    observing the (noisy) value at x [Q, D], at any fidelity.

    ``x_target_set`` [A, D]: target-fidelity decisions over which the best mean is taken (e.g.
    the current best and promising candidates); ``x_own_target`` [Q, D]: optionally, each
    candidate's own mixture at the target fidelity, added to the set for that candidate. After
    observing y at x the posterior mean at a moves linearly in Z ~ N(0, 1):
    ``mu_a + s_a Z`` with ``s_a = Cov(a, x) / sqrt(Var(x) + noise)``; the expectation of the
    minimum over a is taken by Gauss-Hermite quadrature with ``num_quadrature`` nodes.
    Divide by cost (or use :func:`cost_cooled`) for KG per unit cost.
    """
    dtype = post.alpha.dtype
    _, prior_q, Vq = gp.project(post, x)
    var_q = gp.posterior_variance(prior_q, Vq)
    denom = jnp.sqrt(var_q + post.noise)  # [Q]
    mean_a, _, Va = gp.project(post, x_target_set)
    cov_aq = post.amplitude * kernels.gram(post.kernel, x_target_set, x) - Va @ Vq.T  # [A, Q]
    slopes = (cov_aq / denom).T  # [Q, A]
    means = jnp.broadcast_to(mean_a, slopes.shape)
    if x_own_target is not None:
        mean_o, _, Vo = gp.project(post, x_own_target)
        prior_cross = post.amplitude * jax.vmap(post.kernel.evaluate)(x_own_target, x)
        cov_oq = prior_cross - jnp.sum(Vo * Vq, axis=1)
        slopes = jnp.concatenate([slopes, (cov_oq / denom)[:, None]], axis=1)
        means = jnp.concatenate([means, mean_o[:, None]], axis=1)
    nodes, weights = _gauss_hermite(num_quadrature, dtype)
    # [Q, J] expected minimum; min over a of means + slopes * z
    minima = jnp.min(means[:, None, :] + slopes[:, None, :] * nodes[None, :, None], axis=-1)
    expected_min = minima @ weights
    return post.y_scale * jnp.maximum(jnp.min(means, axis=1) - expected_min, 0.0)
