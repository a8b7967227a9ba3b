"""Synthetic benchmark problems shared by the recipes_jax and BoTorch sides (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["make_problem"]


def make_problem(n: int, K: int = 5, seed: int = 0, F: int = 21):
    """Synthetic multi-fidelity mixture problem: returns (X, y, fidelities, costs).

    Mixtures w ~ Dirichlet(1)^K; u_scale from 7 evenly spaced values in [0, 1]; u_steps ~ U[0, 1].
    y = -0.05 * sum_k a_k log(w_k + 1e-3) + 0.5 (1 - u_scale)^1.5 + 0.3 (1 - u_steps)
        + N(0, 0.01^2), with a_k = linspace(1.5, 0.5, K) (so domains differ in importance).
    Fidelities: the 7 scales x steps {1/3, 2/3, 1} (F = 21; F must be 7 * m, steps then
    {1/m, ..., 1}). Relative costs: exp(2.5 (u_scale - 1)) * exp(3 (u_steps - 1)).
    """
    if F % 7:
        raise ValueError("F must be a multiple of 7 (7 scales x F/7 step values)")
    rng = np.random.default_rng(seed)
    scales = np.linspace(0.0, 1.0, 7)
    w = rng.dirichlet(np.ones(K), size=n)
    u_scale = rng.choice(scales, size=n)
    u_steps = rng.uniform(0.0, 1.0, size=n)
    X = np.column_stack([w, u_scale, u_steps])
    a = np.linspace(1.5, 0.5, K)
    y = (
        -0.05 * (np.log(w + 1e-3) @ a)
        + 0.5 * (1.0 - u_scale) ** 1.5
        + 0.3 * (1.0 - u_steps)
        + 0.01 * rng.standard_normal(n)
    )
    m = F // 7
    steps = np.arange(1, m + 1) / m
    fidelities = np.array([(s, t) for s in scales for t in steps], dtype=np.float64)
    costs = np.exp(2.5 * (fidelities[:, 0] - 1.0)) * np.exp(3.0 * (fidelities[:, 1] - 1.0))
    return X, y, fidelities, costs
