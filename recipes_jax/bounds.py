"""Sigmoid box constraints for hyperparameters: optimizers work on unconstrained values."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["bounded", "unbounded"]


def bounded(raw: jax.Array, lo, hi) -> jax.Array:
    """Map unconstrained ``raw`` into the open interval (lo, hi) with a sigmoid.

    Hyperparameters are optimized in this form so that no step of a line search can reach
    absurd values (a lengthscale of 1e-150 overflows gradients to NaN).
    """
    return lo + (hi - lo) * jax.nn.sigmoid(raw)


def unbounded(value, lo, hi):
    """Inverse of :func:`bounded` (for initial values strictly inside (lo, hi))."""
    frac = jnp.clip((jnp.asarray(value) - lo) / (hi - lo), 1e-6, 1 - 1e-6)
    return jnp.log(frac) - jnp.log1p(-frac)
