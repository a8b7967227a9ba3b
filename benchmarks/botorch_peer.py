"""One BoTorch ask of a multi-fidelity BO loop over LLM data mixtures: a peer for timing.

Standalone on purpose (numpy, torch, botorch, gpytorch only) so that ``ask_latency.py`` can
import it lazily when BoTorch is installed and time it side by side with the JAX code.

Input encoding (shared with the JAX side): a point is ``x = [w_1..w_K, u_scale, u_steps]`` with
``w`` on the probability simplex and ``u_scale``, ``u_steps`` in [0, 1] (normalized log model
scale and normalized log training steps). Targets are minimized.

One ``iteration``:
1. ``SingleTaskGP`` with ``Standardize(m=1)`` and an ARD ``ScaleKernel(MaternKernel(nu=2.5))``
   (or RBF) over all K+2 inputs, default likelihood and priors otherwise, fitted with
   ``fit_gpytorch_mll``.
2. ``LogExpectedImprovement`` against the lowest observed y (``maximize=False``).
3. For each fidelity: ``optimize_acqf`` over the mixture with the fidelity's two inputs fixed
   and the equality constraint ``sum(w) = 1``; score = log-EI - log(cost). The best score wins.

Initial conditions (``init``): BoTorch's own pipeline (``gen_batch_initial_conditions``: evaluate
the acquisition at ``raw_samples`` points, Boltzmann-select ``num_restarts`` of them), fed with
one of two samplers of the uniform distribution on the simplex:
- ``"dirichlet"`` (default): exact Dirichlet(1) draws, passed as the ``generator`` hook;
- ``"polytope"``: BoTorch's default when there are equality constraints, a hit-and-run chain
  (10,000 burn-in steps, thinning 32) run in a Python loop; it costs about 2 s per fidelity on
  2 CPU cores, i.e. ~40 s of every ask over 21 fidelities, regardless of n.

Kernel priors (``priors``): "none" (default, as specified: a ScaleKernel with no priors, only
BoTorch's default noise prior) or "lognormal" (BoTorch's dim-scaled lengthscale prior plus
log-outputscale ~ N(0, 1), closer to recipes_jax's GP). On ``make_problem`` (y nearly linear in
u_steps) "none" lets the outputscale and the u_steps lengthscale drift large (~400 and ~40 at
n = 500), and L-BFGS-B needs ~850 steps; "lognormal" needs ~500 (Matern) or ~200 (RBF).

    python benchmarks/botorch_peer.py      # times iteration() at n = 50, 200, 500
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import torch
from botorch.acquisition import LogExpectedImprovement
from botorch.exceptions.warnings import InputDataWarning, NumericsWarning
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from botorch.optim import optimize_acqf
from gpytorch.kernels import MaternKernel, RBFKernel, ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior
from problems import make_problem

__all__ = ["iteration", "make_problem"]


def _kernel(kind: str, d: int, priors: str) -> ScaleKernel:
    if kind not in ("matern52", "rbf"):
        raise ValueError(f"unknown kernel {kind!r}; expected 'matern52' or 'rbf'")
    if priors == "none":
        base = (
            MaternKernel(nu=2.5, ard_num_dims=d)
            if kind == "matern52"
            else RBFKernel(ard_num_dims=d)
        )
        return ScaleKernel(base)
    if priors == "lognormal":
        # BoTorch's dim-scaled LogNormal lengthscale prior (its default kernel's) on the same
        # kernel, plus log(outputscale) ~ N(0, 1) as in recipes_jax (log-amplitude ~ N(0, 1)).
        base = get_covar_module_with_dim_scaled_prior(d, use_rbf_kernel=kind == "rbf")
        return ScaleKernel(base, outputscale_prior=LogNormalPrior(0.0, 1.0))
    raise ValueError(f"unknown priors {priors!r}; expected 'none' or 'lognormal'")


def iteration(
    X: np.ndarray,
    y: np.ndarray,
    fidelities: np.ndarray,
    costs: np.ndarray,
    *,
    seed: int = 0,
    raw_samples: int = 512,
    num_restarts: int = 8,
    kernel: str = "matern52",
    init: str = "dirichlet",
    priors: str = "none",
) -> dict:
    """One BoTorch ask: refit + acquisition search over every fidelity.

    X [n, K+2] float64, y [n] float64, fidelities [F, 2] (u_scale, u_steps) rows, costs [F] > 0.
    Returns dict(mixture=[K] np array, fidelity_index=int, value=float (best log-EI minus log
    cost), fit_seconds=float, acq_seconds=float, total_seconds=float).
    ``init``: "dirichlet" (exact uniform simplex raw samples) or "polytope" (BoTorch's default
    hit-and-run sampler); see the module docstring. ``priors``: "none" (the kernel as specified,
    no kernel priors; BoTorch's default likelihood prior only) or "lognormal" (see ``_kernel``).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    fidelities = np.asarray(fidelities, dtype=np.float64).reshape(-1, 2)
    costs = np.asarray(costs, dtype=np.float64).reshape(-1)
    n, d = X.shape
    K = d - 2
    if K < 1 or y.shape[0] != n or costs.shape[0] != fidelities.shape[0]:
        raise ValueError("shapes: X [n, K+2], y [n], fidelities [F, 2], costs [F]")
    if np.any(costs <= 0):
        raise ValueError("costs must be > 0")
    if init not in ("dirichlet", "polytope"):
        raise ValueError(f"unknown init {init!r}; expected 'dirichlet' or 'polytope'")

    torch.manual_seed(seed)
    dt = torch.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputDataWarning)
        warnings.simplefilter("ignore", NumericsWarning)

        t0 = time.perf_counter()
        train_X = torch.as_tensor(X, dtype=dt)
        train_Y = torch.as_tensor(y, dtype=dt).unsqueeze(-1)
        model = SingleTaskGP(
            train_X,
            train_Y,
            covar_module=_kernel(kernel, d, priors),
            outcome_transform=Standardize(m=1),
        )
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        fit_gpytorch_mll(mll)
        t1 = time.perf_counter()

        acq = LogExpectedImprovement(model, best_f=float(y.min()), maximize=False)
        bounds = torch.stack([torch.zeros(d, dtype=dt), torch.ones(d, dtype=dt)])
        simplex = [(torch.arange(K), torch.ones(K, dtype=dt), 1.0)]
        ic_kwargs = {}
        if init == "dirichlet":
            dirichlet = torch.distributions.Dirichlet(torch.ones(K, dtype=dt))

            def generator(m: int, q: int, _seed: int | None) -> torch.Tensor:
                # Columns K, K+1 are placeholders: BoTorch overwrites them with fixed_features.
                w = dirichlet.sample(torch.Size([m, q]))
                return torch.cat([w, torch.zeros(m, q, 2, dtype=dt)], dim=-1)

            ic_kwargs["generator"] = generator
        best_score, best_f, best_w = -math.inf, -1, None
        for f, (u_scale, u_steps) in enumerate(fidelities):
            cand, val = optimize_acqf(
                acq,
                bounds=bounds,
                q=1,
                num_restarts=num_restarts,
                raw_samples=raw_samples,
                fixed_features={K: float(u_scale), K + 1: float(u_steps)},
                equality_constraints=simplex,
                **ic_kwargs,
            )
            score = float(val) - math.log(float(costs[f]))
            if score > best_score:
                best_score, best_f = score, f
                best_w = cand.detach().reshape(-1)[:K].numpy().copy()
        t2 = time.perf_counter()

    return {
        "mixture": best_w,
        "fidelity_index": int(best_f),
        "value": float(best_score),
        "fit_seconds": t1 - t0,
        "acq_seconds": t2 - t1,
        "total_seconds": t2 - t0,
    }


def _main() -> None:
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'n':>5} {'fit s':>8} {'acq s':>8} {'total s':>8}  fidelity  value    mixture")
    for n in (50, 200, 500):
        X, y, fid, costs = make_problem(n)
        iteration(X, y, fid, costs, seed=0)  # warmup
        runs = [iteration(X, y, fid, costs, seed=r + 1) for r in range(3)]
        fit = float(np.median([r["fit_seconds"] for r in runs]))
        acq = float(np.median([r["acq_seconds"] for r in runs]))
        tot = float(np.median([r["total_seconds"] for r in runs]))
        last = runs[-1]
        mix = np.array2string(last["mixture"], precision=3, suppress_small=True)
        print(
            f"{n:>5} {fit:>8.3f} {acq:>8.3f} {tot:>8.3f}  {last['fidelity_index']:>8}"
            f"  {last['value']:+.3f}  {mix}",
            flush=True,
        )


if __name__ == "__main__":
    _main()
