"""MFMS-BO campaigns in BoTorch on the paper world: a peer of ``rj.mfms_bo`` for comparing
median regret at equal budget and wall time per campaign.

Mirrors ``recipes_jax.strategies.bo.mfms_bo`` with its defaults, as run by
``rj.run_campaign`` (one ask, one run, one tell, in sequence):

- Decisions: a mixture ``w`` on the 5-simplex and a fidelity from ``space.fidelity_grid(3)``
  (7 scales x 6,500 / 13,000 / 19,500 steps = 21 fidelities); target (1000M, 19,500); costs
  from ``space.cost`` in target-run units.
- Initial design: ``num_initial = 5`` (K) Dirichlet(1) mixtures at the cheapest fidelity of each
  scale, cycling through the scales cheapest first (as ``bayes_opt``'s ``initial_fidelities``).
- Observations: learning curves. A run to ``s`` steps reports the metric at every checkpoint
  of (6,500, 13,000, 19,500) at or below ``s``, each a row of the GP's data. Minimized
  (StackExchange cross-entropy).
- Model, refit every ask: ``SingleTaskGP`` on ``x = space.encode(w, m, s) = [w, u_scale,
  u_steps]`` (7 inputs), ``Standardize(m=1)``, ``fit_gpytorch_mll``, and (``--kernel
  mfms_sqrt``, default) rj.mfms_bo's kernel ``ScaleKernel(RBF_ARD(w) * RBF(u_scale) *
  RBF(u_steps)) + ScaleKernel(RBF_ARD(w) * RBF(u_scale))`` over ``sqrt(w)`` (an input
  transform), or (``--kernel mfms``) the same over raw ``w`` (rj.mfms_bo's default until
  2026-12-05, with which the committed peer results ran), or (``--kernel paper``) the
  paper's first term alone over raw ``w`` (``active_dims``). BoTorch keeps every
  observation (recipes_jax's buffer holds 128 rows in the benchmark preset and drops the
  cheapest when full).
- Acquisition ``target_ei`` (augmented EI, ``make_scores`` in bo.py), maximized: for
  ``x = (w, f)`` and ``x_t = (w, target)``, ``log EI(mean_t, std_t; best) + log corr(f(x),
  f(x_t)) + log(1 - sqrt(noise / (var_x + noise))) - alpha * log cost(f)``; the joint latent
  posterior of (x, x_t) from one ``model.posterior`` call; ``best`` is the lowest posterior
  mean at the target over the observed mixtures; all in metric units (the likelihood's noise
  rescaled by ``Standardize``'s variance). ``alpha = --cost-exponent`` (default 0.25, as
  ``rj.mfms_bo``), times, with ``--cooling-budget B``, the paper's cost cooling
  ``clip((B - spent) / (B - initial_spent), 0, 1)``.
- Budget: the campaign ends at the first proposal that would take spending past ``--budget``
  (as ``run_campaign``) or after ``--max-asks`` asks.
- Recommendation: the mixture minimizing the posterior mean at the target:
  ``optimize_acqf(PosteriorMean(maximize=False))`` with the target's inputs fixed, or an
  observed mixture if one has a lower mean. Scored with ``analysis.regret`` on the truth.

How this differs from recipes_jax's loop:

- Acquisition search: screen 512 Dirichlet(1) mixtures (plus the incumbent) x 21 fidelities
  in one batched evaluation, then ``optimize_acqf`` (SLSQP under ``sum(w) = 1``, bounds
  [0, 1], the fidelity inputs fixed, Dirichlet(1) raw samples as in ``botorch_peer.py``:
  ``raw_samples=512``, ``num_restarts=4``) only at the ``--top-fidelities`` (default 2) best
  screened fidelities; a fidelity's score is the better of its screened and optimized values.
  recipes_jax (the speedup benchmark's ``standard`` preset, which ``peer_compare.py`` runs)
  screens 512 mixtures x 21 fidelities and refines the best 4 (mixture, fidelity) pairs by
  10 optax steps. ``--top-fidelities 21`` optimizes every fidelity.
- Hyperparameters: BoTorch's L-BFGS-B fit to convergence (``fit_gpytorch_mll``),
  warm-started from the previous ask's hyperparameters; recipes_jax (``standard`` preset)
  runs 10 L-BFGS steps from the warm start. Priors (``--priors``): "lognormal" (default):
  BoTorch's dim-scaled LogNormal(sqrt 2 + log(7) / 2, sqrt 3) lengthscale prior (its
  default for a 7-input ARD RBF; the product of RBFs over disjoint inputs is one ARD RBF) on
  every lengthscale, lengthscales >= 0.025, and log(outputscale) ~ N(0, 1) as recipes_jax's
  log-amplitude; "none": no kernel priors. Both: BoTorch's default likelihood (noise
  LogNormal(-4, 1) prior, noise >= 1e-4, standardized units; recipes_jax: log-noise ~
  N(-4, 2), noise >= 1e-6) and constant mean (recipes_jax: constant mean too).
- Recommendation: made with the model fitted to all the data told so far (recipes_jax
  conditions the previous ask's hyperparameters on the new data), and by default only where
  it is scored: after the last ask whose cumulative cost is <= each report budget (5, 10,
  25, 50 and ``--budget``) and after the last ask; ``--recommend-every`` makes one after every
  tell, as recipes_jax does.
- Pending runs (kriging believer) do not arise: campaigns are sequential, as in
  ``run_campaign``.
- Random numbers: numpy / torch seeds ``i`` for seed ``i``, so campaigns differ from
  recipes_jax's (JAX keys); compare medians over seeds, not seed by seed.

Run (BoTorch is not a dependency of recipes_jax; from the repository root)::

    python3 -m venv /tmp/btvenv
    /tmp/btvenv/bin/pip install -e '.[botorch,paper]'
    /tmp/btvenv/bin/python benchmarks/botorch_mfms.py --seeds 8 --budget 50
    /tmp/btvenv/bin/python benchmarks/botorch_mfms.py --seeds 1 --budget 3 --max-asks 14

The paper world is read from ``$RECIPES_JAX_DATA/surrogate_runs.pkl`` (default
``../shared/data``; ``--paper-runs`` overrides), a pickle we generated ourselves, loaded as
trusted. Results go to ``benchmarks/results/botorch_mfms.json`` (``--out``), rewritten after
every seed: settings, versions, the optimum, and per seed ``ask_records`` (fidelity, cost,
cumulative cost, mixture, ``fit_s`` / ``acq_s`` / ``seconds`` of the ask and its run, without
recommendations; ``recommend_s``), ``recommendations`` (after which ask, at what cost, the
mixture, its regret), ``regret_at`` (per report budget), ``wall_s`` (the campaign, without
building the problem or scoring regrets) and ``s_per_ask``; ``summary`` holds the medians.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction, PosteriorMean
from botorch.acquisition.analytic import _log_ei_helper
from botorch.exceptions.warnings import InputDataWarning, NumericsWarning
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.input import InputTransform
from botorch.models.transforms.outcome import Standardize
from botorch.optim import optimize_acqf
from botorch.utils.transforms import t_batch_mode_transform
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import RBFKernel, ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior

jax.config.update("jax_enable_x64", True)

from recipes_jax import analysis, benchmark  # noqa: E402  (after enabling x64)

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("RECIPES_JAX_DATA", HERE.parent.parent / "shared" / "data"))
RESULTS = HERE / "results" / "botorch_mfms.json"
DT = torch.float64


# ----------------------------------------------------------------------------- model


def rbf_product(parts, d: int, priors: str):
    """Product of RBF kernels, one per group of input columns in ``parts``, with BoTorch's
    dim-scaled lengthscale prior for a ``d``-input ARD RBF (``priors="lognormal"``) or none."""
    if priors not in ("lognormal", "none"):
        raise ValueError(f"unknown priors {priors!r}; expected 'lognormal' or 'none'")
    factors = []
    for a in parts:
        if priors == "none":
            factors.append(RBFKernel(ard_num_dims=len(a), active_dims=a))
            continue
        prior = LogNormalPrior(loc=math.sqrt(2) + 0.5 * math.log(d), scale=math.sqrt(3))
        factors.append(
            RBFKernel(
                ard_num_dims=len(a),
                active_dims=a,
                lengthscale_prior=prior,
                lengthscale_constraint=GreaterThan(
                    2.5e-2, transform=None, initial_value=prior.mode
                ),
            )
        )
    product = factors[0]
    for f in factors[1:]:
        product = product * f
    return product


def scaled(kernel, priors: str) -> ScaleKernel:
    if priors == "none":
        return ScaleKernel(kernel)
    return ScaleKernel(kernel, outputscale_prior=LogNormalPrior(0.0, 1.0))


def paper_kernel(K: int, priors: str) -> ScaleKernel:
    """ScaleKernel(RBF over w (ARD, K dims) * RBF over u_scale * RBF over u_steps)."""
    d = K + 2
    return scaled(rbf_product((list(range(K)), [K], [K + 1]), d, priors), priors)


def mfms_kernel(K: int, priors: str):
    """``paper_kernel`` + ScaleKernel(RBF over w * RBF over u_scale), as
    ``recipes_jax.kernels.mfms_kernel("rbf", "raw")`` (raw weights; with
    :class:`SqrtMixture` as the model's input transform, rj.mfms_bo's default)."""
    d = K + 2
    extra = scaled(rbf_product((list(range(K)), [K]), d, priors), priors)
    return paper_kernel(K, priors) + extra


class SqrtMixture(InputTransform):
    """Replaces the mixture columns ``w`` of [..., K + 2] inputs by ``sqrt(w)`` (Hellinger
    geometry), as ``recipes_jax.kernels.mixture_features(w, "sqrt")``."""

    def __init__(self, num_domains: int):
        super().__init__()
        self.num_domains = num_domains
        self.transform_on_train = self.transform_on_eval = self.transform_on_fantasize = True

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        K = self.num_domains
        return torch.cat([torch.sqrt(X[..., :K].clamp_min(0.0) + 1e-12), X[..., K:]], dim=-1)


#: kernel name -> (covariance module factory, whether the mixture enters as sqrt(w))
KERNELS = {
    "mfms_sqrt": (mfms_kernel, True),  # rj.mfms_bo's default, kernels.mfms_kernel()
    "mfms": (mfms_kernel, False),  # raw weights: kernels.mfms_kernel("rbf", "raw")
    "paper": (paper_kernel, False),
}


def fit_model(
    X: np.ndarray,
    y: np.ndarray,
    K: int,
    priors: str,
    warm: dict | None,
    kernel: str = "mfms_sqrt",
):
    """SingleTaskGP on X [n, K+2], y [n] (minimized), fitted; warm-started from ``warm``
    (a previous model's state_dict, its outcome transform excluded) when given."""
    model = SingleTaskGP(
        torch.as_tensor(X, dtype=DT),
        torch.as_tensor(y, dtype=DT).unsqueeze(-1),
        covar_module=KERNELS[kernel][0](K, priors),
        input_transform=SqrtMixture(K) if KERNELS[kernel][1] else None,
        outcome_transform=Standardize(m=1),
    )
    if warm is not None:
        model.load_state_dict(warm, strict=False)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    fit_gpytorch_mll(mll)
    model.eval()
    return model


def hyperparameters(model) -> dict:
    return {
        k: v.detach().clone()
        for k, v in model.state_dict().items()
        if not k.startswith("outcome_transform")
    }


def with_fidelity(w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """[..., K] mixtures and a [2] fidelity -> [..., K+2] inputs."""
    return torch.cat([w, u.expand(*w.shape[:-1], 2)], dim=-1)


class TargetEI(AcquisitionFunction):
    """Augmented EI of ``x = (w, fidelity)`` for the target (``make_scores``' target_ei),
    without the cost term: ``log EI(x_t) + log corr(f(x), f(x_t)) + log signal(x)``, with
    ``x_t = (w, target)``. Latent (noise-free) posterior, metric units; minimization."""

    def __init__(self, model, best_f: float, target_u: torch.Tensor, K: int):
        super().__init__(model)
        self.K = K
        self.register_buffer("best_f", torch.as_tensor(best_f, dtype=DT))
        self.register_buffer("target_u", target_u)
        stdv = model.outcome_transform.stdvs.reshape(())
        noise = model.likelihood.noise.reshape(()) * stdv**2
        self.register_buffer("noise", noise.detach())

    @t_batch_mode_transform(expected_q=1)
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        x = X[..., 0, :]
        x_t = with_fidelity(x[..., : self.K], self.target_u)
        post = self.model.posterior(torch.stack([x, x_t], dim=-2))
        mean_t = post.mean[..., 1, 0]
        cov = post.distribution.covariance_matrix  # [b, 2, 2], latent
        var_x, var_t, cov_xt = cov[..., 0, 0], cov[..., 1, 1], cov[..., 0, 1]
        tiny = torch.finfo(DT).tiny
        sigma_t = var_t.clamp_min(1e-12).sqrt()
        log_ei = _log_ei_helper((self.best_f - mean_t) / sigma_t) + sigma_t.log()
        corr = cov_xt / (var_x * var_t).clamp_min(tiny).sqrt()
        signal = 1.0 - (self.noise / (var_x.clamp_min(0.0) + self.noise)).sqrt()
        return log_ei + corr.clamp(tiny, 1.0).log() + signal.clamp_min(tiny).log()


def dirichlet_generator(K: int):
    """``gen_batch_initial_conditions`` hook: exact Dirichlet(1) raw samples (botorch_peer)."""
    dirichlet = torch.distributions.Dirichlet(torch.ones(K, dtype=DT))

    def generator(m: int, q: int, _seed: int | None) -> torch.Tensor:
        # columns K, K+1 are placeholders: BoTorch overwrites them with fixed_features
        w = dirichlet.sample(torch.Size([m, q]))
        return torch.cat([w, torch.zeros(m, q, 2, dtype=DT)], dim=-1)

    return generator


def _simplex_kwargs(K: int, u: torch.Tensor, raw_samples: int, num_restarts: int) -> dict:
    return dict(
        bounds=torch.stack([torch.zeros(K + 2, dtype=DT), torch.ones(K + 2, dtype=DT)]),
        q=1,
        num_restarts=num_restarts,
        raw_samples=raw_samples,
        fixed_features={K: float(u[0]), K + 1: float(u[1])},
        equality_constraints=[(torch.arange(K), torch.ones(K, dtype=DT), 1.0)],
        generator=dirichlet_generator(K),
    )


def _to_simplex(w: torch.Tensor) -> np.ndarray:
    w = np.clip(w.detach().reshape(-1).numpy().astype(np.float64), 0.0, None)
    return w / w.sum()


def target_means(model, W: np.ndarray, target_u: torch.Tensor) -> np.ndarray:
    """Posterior mean at the target (metric units) of mixtures W [R, K]."""
    with torch.no_grad():
        X = with_fidelity(torch.as_tensor(W, dtype=DT), target_u)
        return model.posterior(X).mean[..., 0].numpy()


def recommend(model, run_w: np.ndarray, target_u: torch.Tensor, args) -> np.ndarray:
    """Mixture minimizing the posterior mean at the target: optimize_acqf(PosteriorMean)
    against every observed mixture."""
    K = run_w.shape[1]
    cand, _ = optimize_acqf(
        PosteriorMean(model, maximize=False),
        **_simplex_kwargs(K, target_u, args.raw_samples, args.num_restarts),
    )
    w_opt = _to_simplex(cand[..., :K])
    W = np.concatenate([w_opt[None], run_w])
    return W[int(np.argmin(target_means(model, W, target_u)))]


def propose(model, run_w, fid_u, log_costs, target_u, alpha: float, args):
    """One acquisition search: (mixture [K], fidelity index, score, screened score)."""
    F, K = fid_u.shape[0], run_w.shape[1]
    means = target_means(model, run_w, target_u)
    incumbent = run_w[int(np.argmin(means))]
    acqf = TargetEI(model, float(means.min()), target_u, K)

    W = torch.distributions.Dirichlet(torch.ones(K, dtype=DT)).sample((args.screen,))
    W = torch.cat([W, torch.as_tensor(incumbent, dtype=DT)[None]])
    C = W.shape[0]
    X = torch.cat([with_fidelity(W, fid_u[f]) for f in range(F)])  # fidelity-major [F*C, d]
    with torch.no_grad():
        values = torch.cat([acqf(chunk.unsqueeze(-2)) for chunk in X.split(4096)])
    scores = values.reshape(F, C) - alpha * log_costs[:, None]
    best_c = scores.argmax(dim=1)
    best_s = scores.max(dim=1).values
    order = torch.argsort(best_s, descending=True)
    f0 = int(order[0])
    best = (W[best_c[f0]].numpy().copy(), f0, float(best_s[f0]))
    screened = best[2]
    for f in order[: args.top_fidelities].tolist():
        cand, val = optimize_acqf(
            acqf, **_simplex_kwargs(K, fid_u[f], args.raw_samples, args.num_restarts)
        )
        score = float(val) - alpha * float(log_costs[f])
        if score > best[2]:
            best = (_to_simplex(cand[..., :K]), f, score)
    return (*best, screened)


# ----------------------------------------------------------------------------- campaign


def run_seed(problem, env, seed: int, args) -> dict:
    """One campaign; returns its record (regrets filled in by the caller)."""
    space = problem.space
    K = space.num_domains
    sign = -1.0 if space.maximize else 1.0
    scales, steps = space.fidelity_grid(3)
    F = len(scales)
    fid_costs = np.asarray(space.cost(scales, steps), np.float64)
    fid_u = torch.tensor(np.asarray(space.encode(np.zeros((F, K)), scales, steps))[:, K:])
    target_u = torch.tensor(np.asarray(space.encode(np.zeros((1, K)), *space.target))[0, K:])
    log_costs = torch.as_tensor(np.log(fid_costs), dtype=DT)
    checkpoints = np.unique(steps).astype(np.float64)
    # bayes_opt's initial fidelities: the cheapest of each scale, cheapest first
    cheapest: dict[float, int] = {}
    for i in np.argsort(fid_costs, kind="stable"):
        cheapest.setdefault(float(scales[i]), int(i))
    initial = sorted(cheapest.values(), key=lambda i: fid_costs[i])
    report = sorted({b for b in benchmark.REPORT_BUDGETS if b < args.budget} | {args.budget})
    tolerance = 1e-6 * max(args.budget, 1.0)

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    X_rows: list[np.ndarray] = []
    y_rows: list[float] = []
    run_w: list[np.ndarray] = []
    asks: list[dict] = []
    recs: list[dict] = []
    spent, initial_spent = 0.0, None
    warm = None
    model, model_n = None, -1

    def fitted():
        nonlocal model, model_n, warm
        if model_n != len(y_rows):
            model = fit_model(
                np.stack(X_rows), np.asarray(y_rows), K, args.priors, warm, args.kernel
            )
            warm, model_n = hyperparameters(model), len(y_rows)
        return model

    def record_recommendation() -> float:
        # of the data told so far: after ask len(asks) - 1; returns the seconds it took
        t0 = time.perf_counter()
        w = recommend(fitted(), np.stack(run_w), target_u, args)
        recs.append({"ask": len(asks) - 1, "spent": spent, "mixture": w.tolist()})
        asks[-1]["recommend_s"] = time.perf_counter() - t0
        return asks[-1]["recommend_s"]

    start = time.perf_counter()
    for t in range(args.max_asks):
        t0 = time.perf_counter()
        info: dict = {}
        if t < args.num_initial:
            w, f = rng.dirichlet(np.ones(K)), initial[t % len(initial)]
        else:
            fitted()
            t1 = time.perf_counter()
            alpha = args.cost_exponent
            if args.cooling_budget is not None:
                span = max(args.cooling_budget - initial_spent, 1e-12)
                alpha *= float(np.clip((args.cooling_budget - spent) / span, 0.0, 1.0))
            w, f, score, screened = propose(
                model, np.stack(run_w), fid_u, log_costs, target_u, alpha, args
            )
            info = {
                "fit_s": t1 - t0,
                "acq_s": time.perf_counter() - t1,
                "alpha": alpha,
                "score": score,
                "screened_score": screened,
            }
        cost = float(fid_costs[f])
        over = spent + cost > args.budget + tolerance
        crossing = any(spent <= b < spent + cost for b in report)
        rec_s = 0.0
        if asks and (over or crossing or args.recommend_every):
            rec_s = record_recommendation()  # with the model this ask just fitted
        if over:
            break
        # the run: its learning curve at the checkpoints it reaches
        m, s = float(scales[f]), float(steps[f])
        wb = np.broadcast_to(w, (len(checkpoints), K))
        values = np.asarray(env(wb, np.full(len(checkpoints), m), checkpoints), np.float64)
        reached = checkpoints <= s
        x = np.asarray(space.encode(wb[reached], np.full(reached.sum(), m), checkpoints[reached]))
        X_rows.extend(x)
        y_rows.extend(sign * values[reached])
        run_w.append(np.asarray(w, np.float64))
        spent += cost
        if t + 1 == args.num_initial:
            initial_spent = spent
        asks.append(
            {"scale": m, "steps": int(s), "cost": cost, "spent": spent, "mixture": w.tolist()}
        )
        asks[-1].update(info)
        asks[-1]["seconds"] = time.perf_counter() - t0 - rec_s  # ask + run, no recommendation
    else:
        record_recommendation()
    wall = time.perf_counter() - start
    return {
        "seed": seed,
        "asks": len(asks),
        "spent": spent,
        "wall_s": wall,
        "s_per_ask": wall / max(len(asks), 1),
        "ask_records": asks,
        "recommendations": recs,
        "report_budgets": report,
    }


def score_regret(problem, record: dict) -> None:
    """Regret of every recommendation, and at each report budget (in place)."""
    recs = record["recommendations"]
    W = np.asarray([r["mixture"] for r in recs], np.float64)
    regret = analysis.regret(
        problem.truth,
        W,
        *problem.space.target,
        problem.optimum.value,
        maximize=problem.space.maximize,
    )
    for r, g in zip(recs, regret, strict=True):
        r["regret"] = float(g)
    record["regret_at"] = {}
    for b in record["report_budgets"]:
        done = [r for r in recs if r["spent"] <= b + 1e-6 * max(b, 1.0)]
        record["regret_at"][f"{b:g}"] = done[-1]["regret"] if done else float("inf")


def versions() -> dict:
    import botorch
    import gpytorch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "botorch": botorch.__version__,
        "gpytorch": gpytorch.__version__,
        "jax": jax.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
    }


def _fmt(x: float) -> str:
    return "inf" if np.isinf(x) else f"{x:.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=8, help="campaigns: seeds 0..N-1")
    parser.add_argument("--budget", type=float, default=50.0, help="target-run units")
    parser.add_argument("--max-asks", type=int, default=100)
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="run seeds first..first+seeds-1 (to split "
        "the seeds over parallel processes, each with its own --out)",
    )
    parser.add_argument("--objective", default="stackexchange", choices=list(benchmark.OBJECTIVES))
    parser.add_argument(
        "--cost-exponent", type=float, default=0.25, help="alpha (rj.mfms_bo's default 0.25)"
    )
    parser.add_argument("--cooling-budget", type=float, default=None)
    parser.add_argument("--paper-runs", type=Path, default=DATA / "surrogate_runs.pkl")
    parser.add_argument("--priors", choices=["lognormal", "none"], default="lognormal")
    parser.add_argument(
        "--kernel",
        choices=sorted(KERNELS),
        default="mfms_sqrt",
        help="mfms_sqrt: as rj.mfms_bo's default; mfms: the same over raw weights",
    )
    parser.add_argument(
        "--num-initial", type=int, default=5, help="rj.mfms_bo's default: K (10 until 2026-12)"
    )
    parser.add_argument("--screen", type=int, default=512, help="Dirichlet mixtures screened")
    parser.add_argument("--top-fidelities", type=int, default=2, help="optimize_acqf'd per ask")
    parser.add_argument("--raw-samples", type=int, default=512)
    parser.add_argument("--num-restarts", type=int, default=4)
    parser.add_argument("--recommend-every", action="store_true", help="after every tell")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.budget <= 0 or args.seeds < 1 or args.max_asks < 1 or args.num_initial < 1:
        parser.error("need --budget > 0, --seeds >= 1, --max-asks >= 1, --num-initial >= 1")
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    problem = benchmark.paper_problem(args.objective, args.paper_runs, trusted=True)
    env = jax.jit(lambda w, m, s: problem.env(w, m, s))
    K = problem.space.num_domains
    env(np.full((3, K), 1.0 / K), np.full(3, 20.0), np.full(3, 6500.0))  # compile
    print(
        f"paper/{args.objective}: problem built in {time.perf_counter() - t0:.1f} s; optimum "
        f"{problem.optimum.value:.4f}; torch {torch.__version__}, threads "
        f"{torch.get_num_threads()}",
        flush=True,
    )
    report = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "versions": versions(),
        "problem": {
            "world": "paper",
            "objective": args.objective,
            "metric": problem.metric,
            "optimum": {
                "value": float(problem.optimum.value),
                "mixture": np.asarray(problem.optimum.mixture).tolist(),
            },
        },
        "seeds": [],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputDataWarning)
        warnings.simplefilter("ignore", NumericsWarning)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            record = run_seed(problem, env, seed, args)
            score_regret(problem, record)
            report["seeds"].append(record)
            regrets = "  ".join(f"@{b} {_fmt(g)}" for b, g in record["regret_at"].items())
            print(
                f"seed {seed}: {record['asks']} asks, spent {record['spent']:.2f}, regret "
                f"{regrets}, {record['wall_s']:.1f} s ({record['s_per_ask']:.2f} s/ask)",
                flush=True,
            )
            seeds = report["seeds"]
            report["summary"] = {
                "seeds": len(seeds),
                "median_asks": float(np.median([r["asks"] for r in seeds])),
                "median_spent": float(np.median([r["spent"] for r in seeds])),
                "median_wall_s": float(np.median([r["wall_s"] for r in seeds])),
                "median_s_per_ask": float(np.median([r["s_per_ask"] for r in seeds])),
                "median_regret_at": {
                    b: float(np.median([r["regret_at"][b] for r in seeds]))
                    for b in record["regret_at"]
                },
            }
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1))
    s = report["summary"]
    regrets = "  ".join(f"@{b} {_fmt(g)}" for b, g in s["median_regret_at"].items())
    print(
        f"median over {s['seeds']} seeds: {s['median_asks']:.0f} asks, spent "
        f"{s['median_spent']:.2f}, regret {regrets}, {s['median_wall_s']:.1f} s per campaign "
        f"({s['median_s_per_ask']:.2f} s/ask); wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
