"""A small byte-level transformer language model in flax, trained with optax: q models with q
mixtures in one vmapped program.

``train_many(config, streams, mixtures [q, K], keys [q], steps, eval_tokens)`` trains q models
of one width, each on its own mixture of the K token streams (``recipes_jax.data``'s sampler),
and returns each model's held-out loss at every checkpoint (a learning curve). One compiled
program per (width, q): the training loop is a ``lax.scan`` over a fixed chunk of steps, the
Python loop only walks checkpoints.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from recipes_jax import data

__all__ = ["LMConfig", "TinyLM", "count_params", "flops_per_step", "train_many"]


class LMConfig(NamedTuple):
    """Model and training settings (all static).

    width: model dimension; layers, heads: transformer blocks and attention heads;
    seq_len: tokens per training window; batch_size: windows per step; learning_rate: AdamW
    peak rate (cosine decay to 10% over ``total_steps``, warmup ``warmup`` steps);
    chunk: steps per compiled training chunk (checkpoints must be multiples of it).
    """

    width: int = 64
    layers: int = 2
    heads: int = 4
    seq_len: int = 64
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup: int = 20
    total_steps: int = 1000
    chunk: int = 50


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention and a 4x MLP."""

    width: int
    heads: int

    @nn.compact
    def __call__(self, x):
        """x [B, L, width] -> [B, L, width]."""
        mask = nn.make_causal_mask(jnp.ones(x.shape[:2], jnp.int32))
        h = nn.LayerNorm()(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads)(h, h, mask=mask)
        h = nn.LayerNorm()(x)
        h = nn.Dense(4 * self.width)(h)
        return x + nn.Dense(self.width)(nn.gelu(h))


class TinyLM(nn.Module):
    """Byte-level LM: tokens [B, L] int32 in 0..255 -> logits [B, L, 256]."""

    width: int
    layers: int
    heads: int
    seq_len: int

    @nn.compact
    def __call__(self, tokens):
        """tokens [B, L] -> next-byte logits [B, L, 256]."""
        x = nn.Embed(256, self.width)(tokens)
        pos = self.param("pos", nn.initializers.normal(0.02), (self.seq_len, self.width))
        x = x + pos[: tokens.shape[1]]
        for _ in range(self.layers):
            x = Block(self.width, self.heads)(x)
        return nn.Dense(256)(nn.LayerNorm()(x))


def _model(config: LMConfig) -> TinyLM:
    return TinyLM(config.width, config.layers, config.heads, config.seq_len)


def count_params(config: LMConfig) -> int:
    """Number of trainable parameters of the model."""
    shapes = jax.eval_shape(
        _model(config).init, jax.random.key(0), jnp.zeros((1, config.seq_len), jnp.int32)
    )
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(shapes)))


def flops_per_step(config: LMConfig) -> float:
    """Training FLOPs per step, 6 x parameters x tokens (the usual estimate)."""
    return 6.0 * count_params(config) * config.batch_size * config.seq_len


def _optimizer(config: LMConfig) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, config.warmup, config.total_steps, 0.1 * config.learning_rate
    )
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.01))


def _loss(params, model, tokens):
    logits = model.apply(params, tokens[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()


@functools.lru_cache(maxsize=32)
def _programs(config: LMConfig):
    """(init [q], train one chunk [q], evaluate [q]) jitted for this config."""
    model, opt = _model(config), _optimizer(config)

    def init(key):
        params = model.init(key, jnp.zeros((1, config.seq_len), jnp.int32))
        return params, opt.init(params)

    def chunk(params, opt_state, streams, weights, key, start):
        def step(carry, i):
            params, opt_state = carry
            batch = data.sample_batch(
                streams, weights, jax.random.fold_in(key, start + i), config.batch_size,
                config.seq_len,
            )  # fmt: skip
            loss, grads = jax.value_and_grad(_loss)(params, model, batch)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(
            step, (params, opt_state), jnp.arange(config.chunk)
        )
        return params, opt_state, losses.mean()

    def evaluate(params, eval_tokens):
        return _loss(params, model, eval_tokens)

    return (
        jax.jit(jax.vmap(init)),
        jax.jit(jax.vmap(chunk, in_axes=(0, 0, None, 0, 0, None))),
        jax.jit(jax.vmap(evaluate, in_axes=(0, None))),
    )


def train_many(
    config: LMConfig,
    streams: data.TokenStreams,
    mixtures,
    keys,
    steps: int,
    eval_tokens,
    checkpoints=(),
    pad_to: int | None = None,
) -> np.ndarray:
    """Train q models of ``config`` together, model i on mixture ``mixtures[i]``.

    Args:
      streams: the K training domains (``data.token_streams``).
      mixtures: [q, K] weights; keys: [q] PRNG keys (initialization and batches).
      steps: training steps for every model (a multiple of ``config.chunk``).
      eval_tokens: [E, seq_len + 1] int32 held-out windows of the target domain.
      checkpoints: step counts (multiples of ``config.chunk``, <= ``steps``) at which the
        held-out loss is also measured.
      pad_to: train at least this many models, the extra ones copies of model 0 whose
        results are dropped: the programs are compiled per number of models, so callers
        whose q varies (runs grouped by fidelity) compile them once.
    Returns float64 [q, len(checkpoints) + 1]: held-out loss (nats per byte) at each
    checkpoint, then at ``steps``.
    """
    if steps % config.chunk or any(c % config.chunk for c in checkpoints):
        raise ValueError(f"steps and checkpoints must be multiples of chunk={config.chunk}")
    q = len(mixtures)
    if pad_to is not None and q < pad_to:
        fill = lambda a: jnp.concatenate([a, jnp.repeat(a[:1], pad_to - q, axis=0)])
        curves = train_many(
            config, streams, fill(jnp.asarray(mixtures)), fill(jnp.asarray(keys)), steps,
            eval_tokens, checkpoints,
        )  # fmt: skip
        return curves[:q]
    init, chunk, evaluate = _programs(config)
    mixtures = jnp.asarray(mixtures, jnp.float32)
    params, opt_state = init(keys)
    marks = sorted({int(c) for c in checkpoints if c < steps})
    wanted = [*marks, steps]
    out = np.full((mixtures.shape[0], len(wanted)), np.nan)
    done, j = 0, 0
    while done < steps:
        params, opt_state, _ = chunk(params, opt_state, streams, mixtures, keys, done)
        done += config.chunk
        if done == wanted[j]:
            out[:, j] = np.asarray(evaluate(params, eval_tokens))
            j += 1
    at = {s: out[:, i] for i, s in enumerate(wanted)}
    curve = [at.get(int(c), np.full(mixtures.shape[0], np.nan)) for c in checkpoints]
    return np.stack([*curve, at[steps]], axis=1)
