"""The example's flax LM: q models train together, curves at checkpoints, and the mixture
decides what a model learns."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from examples import tiny_lm
from recipes_jax import data

CONFIG = tiny_lm.LMConfig(
    width=16, layers=1, heads=2, seq_len=16, batch_size=8, total_steps=90, warmup=10, chunk=30
)


def _streams():
    """Two very different 'languages': counting bytes and a repeated phrase."""
    counting = np.arange(20_000) % 97
    phrase = np.frombuffer(b"the quick brown fox jumps over the lazy dog. " * 500, np.uint8)
    return data.token_streams([counting, phrase], min_length=CONFIG.seq_len + 1)


def test_models_learn_what_their_mixture_feeds_them():
    streams = _streams()
    held_out = [
        np.asarray(data.sample_batch(streams, np.eye(2)[d], jax.random.key(100 + d), 32, 16))
        for d in range(2)
    ]
    keys = jax.random.split(jax.random.key(0), 2)
    mixtures = np.eye(2)  # model 0 sees only counting, model 1 only the phrase
    losses = [
        tiny_lm.train_many(CONFIG, streams, mixtures, keys, 90, held, checkpoints=(30, 60, 90, 120))
        for held in held_out
    ]
    assert losses[0].shape == (2, 5)
    assert np.isnan(losses[0][:, 3]).all()  # checkpoint 120 is past the run's 90 steps
    np.testing.assert_array_equal(losses[0][:, 2], losses[0][:, 4])  # 90 is the final step
    # on its own domain, each model improves from the first checkpoint to the last
    assert losses[0][0, 0] > losses[0][0, -1] and losses[1][1, 0] > losses[1][1, -1]
    # each model is better on its own domain than the other model is
    assert losses[0][0, -1] < losses[0][1, -1] - 0.5
    assert losses[1][1, -1] < losses[1][0, -1] - 0.5
    # one model, padded to the two-model program (no new compile): model 1's curve
    alone = tiny_lm.train_many(
        CONFIG, streams, mixtures[1:], keys[1:], 90, held_out[0], (30, 60, 90, 120), pad_to=2
    )
    assert alone.shape == (1, 5)
    np.testing.assert_allclose(alone, losses[0][1:], rtol=1e-6)
    assert tiny_lm.count_params(CONFIG) > 0
    assert tiny_lm.flops_per_step(CONFIG) == 6.0 * tiny_lm.count_params(CONFIG) * 8 * 16
    with pytest.raises(ValueError, match="multiples of chunk"):
        tiny_lm.train_many(CONFIG, streams, mixtures, keys, 50, held_out[0])
