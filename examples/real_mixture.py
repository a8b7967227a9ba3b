"""recipes_jax choosing the data mixture of real training runs: a flax LM on stdlib text.

Four training domains from Python's standard library (``examples.text_domains``: source code,
reference prose, release notes, codec tables) and a held-out target domain (stdlib docstrings
with doctests). The metric is the target's held-out loss (nats per byte) of a small byte-level
transformer (``examples.tiny_lm``) trained on a mixture of the four domains. The "scales" are
three model widths; costs come from the models' training FLOPs (6 x parameters x tokens).

Three ways to spend the same compute on choosing the mixture:

- ``mfms_bo``: MFMS-BO through :func:`recipes_jax.run_loop`, q runs per round trained together
  (the proposals of a round that share a width and step count train as one vmapped program);
- ``random_search``: full target runs at Dirichlet(1) mixtures, q per round, best observed wins;
- ``uniform``: no search, equal weights.

Each method's chosen mixture is then trained afresh at the target fidelity with new seeds and
scored on a separate test split of the target domain, so the comparison does not reward
overfitting the validation windows the search saw.

Run it: ``python -m examples.real_mixture`` (about 10 minutes on 2 CPU cores; ``--quick`` for a
small configuration); the notebook ``notebooks/train_real_mixture.ipynb`` runs the same code.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import recipes_jax as rj
from examples import text_domains, tiny_lm
from recipes_jax import data

__all__ = ["FULL", "QUICK", "Experiment", "build", "compare", "evaluate_mixture", "run_method"]


class Settings(NamedTuple):
    """One configuration of the experiment.

    widths: model widths (the scales); steps: the step grid (multiples of ``chunk``), whose
    last value is the target's training length; budget: compute per method, in target runs;
    batch_size: runs per round (q); final_seeds: fresh target runs per chosen mixture;
    eval_windows / test_windows: held-out target windows for the metric / the final score;
    max_bytes: bytes per domain loaded; mfms_options: ``rj.mfms_bo`` options.
    """

    widths: tuple[int, ...]
    steps: tuple[int, ...]
    layers: int
    seq_len: int
    batch: int
    chunk: int
    budget: float
    batch_size: int
    final_seeds: int
    eval_windows: int
    test_windows: int
    max_bytes: int
    mfms_options: dict


FULL = Settings(
    widths=(32, 64, 128),
    steps=tuple(range(50, 601, 50)),
    layers=2,
    seq_len=64,
    batch=16,
    chunk=50,
    budget=6.0,
    batch_size=4,
    final_seeds=3,
    eval_windows=128,
    test_windows=512,
    max_bytes=1_000_000,
    mfms_options=dict(num_asks=48, capacity=128, num_candidates=512, fit_steps=15),
)

#: CI's configuration: tiny models, few steps; checks the pipeline, not the result.
QUICK = Settings(
    widths=(16, 32),
    steps=(30, 60, 90),
    layers=1,
    seq_len=32,
    batch=8,
    chunk=30,
    budget=2.0,
    batch_size=2,
    final_seeds=1,
    eval_windows=32,
    test_windows=64,
    max_bytes=200_000,
    mfms_options=dict(num_asks=8, num_initial=4, capacity=48, num_candidates=64, fit_steps=5),
)


class Experiment(NamedTuple):
    """Everything a method needs: the space, the objective and the data.

    space: the decision space (domains, scales = widths' parameters in millions, steps,
    target, FLOPs per step); objective: batched ``rj.Objective`` over validation windows;
    configs: width -> ``tiny_lm.LMConfig`` by scale; streams: the training domains;
    val, test: int32 [E, seq_len + 1] target windows.
    """

    settings: Settings
    space: rj.Space
    objective: rj.Objective
    configs: dict[float, tiny_lm.LMConfig]
    streams: data.TokenStreams
    val: np.ndarray
    test: np.ndarray


def _windows(tokens: np.ndarray, count: int, length: int) -> np.ndarray:
    """``count`` evenly spaced windows of ``length`` tokens: int32 [count, length]."""
    starts = np.linspace(0, len(tokens) - length, count).astype(int)
    return np.stack([tokens[s : s + length] for s in starts]).astype(np.int32)


def build(settings: Settings = FULL) -> Experiment:
    """Load the domains, split the target, and set up the space and the objective."""
    domains = text_domains.load_domains(settings.max_bytes)
    target = text_domains.load_target()
    val_tokens, test_tokens = text_domains.split(target, 0.5)
    streams = data.token_streams(
        [domains[d] for d in text_domains.DOMAINS], min_length=settings.seq_len + 1
    )
    configs = {}
    for width in settings.widths:
        config = tiny_lm.LMConfig(
            width=width,
            layers=settings.layers,
            heads=4,
            seq_len=settings.seq_len,
            batch_size=settings.batch,
            total_steps=settings.steps[-1],
            warmup=settings.chunk // 2,
            chunk=settings.chunk,
        )
        configs[tiny_lm.count_params(config) / 1e6] = config
    space = rj.Space(
        domains=text_domains.DOMAINS,
        scales=tuple(configs),
        steps=settings.steps,
        target=(max(configs), settings.steps[-1]),
        gflops_per_step={m: tiny_lm.flops_per_step(c) / 1e9 for m, c in configs.items()},
        metric="target loss (nats per byte)",
    )
    val = _windows(val_tokens, settings.eval_windows, settings.seq_len + 1)
    test = _windows(test_tokens, settings.test_windows, settings.seq_len + 1)
    checkpoints = tuple(rj.mfms_bo(space).checkpoints)
    # every training call trains this many models (padded): one compile per width
    model_batch = max(settings.batch_size, settings.final_seeds)

    def train_and_eval(mixtures, scale, steps, keys):
        """q runs sharing (scale, steps): each one's validation-loss curve {step: loss} at the
        checkpoints it passes and at ``steps`` (whatever the strategy reads of it)."""
        config = configs[min(configs, key=lambda m: abs(np.log(m / scale)))]  # float32-safe
        marks = [c for c in checkpoints if c < steps]
        curves = tiny_lm.train_many(
            config, streams, mixtures, keys, steps, val, checkpoints=marks, pad_to=model_batch
        )
        return [dict(zip([*marks, steps], row.tolist(), strict=True)) for row in curves]

    return Experiment(
        settings,
        space,
        rj.objective(train_and_eval, batched=True),
        configs,
        streams,
        val,
        test,
    )


def run_method(exp: Experiment, name: str, key: jax.Array, log=print) -> dict[str, Any]:
    """Spend ``exp.settings.budget`` with method ``name`` (mfms_bo, random_search, uniform);
    returns its chosen mixture [K], its trace (None for uniform) and wall seconds."""
    s, space = exp.settings, exp.space
    start = time.perf_counter()
    if name == "uniform":
        return dict(mixture=np.full(space.num_domains, 1.0 / space.num_domains), trace=None,
                    seconds=0.0)  # fmt: skip
    if name == "mfms_bo":
        strategy = rj.mfms_bo(space, **s.mfms_options)
    elif name == "random_search":
        strategy = rj.random_search(space)
    else:
        raise ValueError(f"unknown method {name!r}; use mfms_bo, random_search or uniform")
    with jax.enable_x64(True):  # the GP fits in float64
        trace = rj.run_loop(strategy, exp.objective, s.budget, key, batch_size=s.batch_size,
                            log=log)  # fmt: skip
    last = int(trace.active.sum()) - 1
    return dict(
        mixture=np.asarray(trace.recommendation[last], np.float64),
        trace=trace,
        seconds=time.perf_counter() - start,
    )


def evaluate_mixture(exp: Experiment, mixture, key: jax.Array) -> np.ndarray:
    """Test-split loss [final_seeds] of fresh target-fidelity models trained on ``mixture``."""
    n = exp.settings.final_seeds
    config = exp.configs[exp.space.target[0]]
    mixtures = np.broadcast_to(np.asarray(mixture, np.float32), (n, exp.space.num_domains))
    keys = jax.random.split(key, n)
    out = tiny_lm.train_many(
        config,
        exp.streams,
        mixtures,
        keys,
        exp.space.target[1],
        jnp.asarray(exp.test),
        pad_to=max(exp.settings.batch_size, n),
    )
    return out[:, -1]


def compare(settings: Settings = FULL, seed: int = 0, log=print) -> dict[str, Any]:
    """Run the three methods at equal compute and score their mixtures on the test split."""
    start = time.perf_counter()
    exp = build(settings)
    log(
        f"domains {list(exp.space.domains)}; widths {list(settings.widths)} = "
        f"{[round(m, 3) for m in exp.space.scales]}M parameters; target "
        f"{exp.space.target[0]:.3f}M x {exp.space.target[1]} steps; budget {settings.budget} "
        f"target runs per method"
    )
    key = jax.random.key(seed)
    results = {}
    for i, name in enumerate(("mfms_bo", "random_search", "uniform")):
        log(f"\n== {name}")
        result = run_method(exp, name, jax.random.fold_in(key, i), log=log)
        result["test_loss"] = evaluate_mixture(exp, result["mixture"], jax.random.fold_in(key, 99))
        log(
            f"{name}: mixture {np.round(result['mixture'], 3).tolist()}, test loss "
            f"{result['test_loss'].mean():.4f} +- {result['test_loss'].std():.4f}"
        )
        results[name] = result
    results["experiment"] = exp
    results["seconds"] = time.perf_counter() - start
    return results


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m examples.real_mixture [--quick] [--seed N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI's small configuration")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    results = compare(QUICK if args.quick else FULL, seed=args.seed)
    domains = list(results["experiment"].space.domains)
    print(f"\n{'method':15s} {'test loss (nats/byte)':>22s}  mixture {domains}")
    for name in ("mfms_bo", "random_search", "uniform"):
        r = results[name]
        print(
            f"{name:15s} {r['test_loss'].mean():10.4f} +- {r['test_loss'].std():.4f}  "
            f"{np.round(r['mixture'], 3).tolist()}"
        )
    print(f"total {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
