"""The mixture sampler: exact domain counts, true windows, jit/scan/vmap, and its errors."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recipes_jax import data

STRIDE = 100_000  # token = domain * STRIDE + position
LENGTHS = (50, 73, 12)  # domain 2 is exactly seq_len + 1 long: its only window starts at 0
SEQ_LEN = 11

sample = jax.jit(data.sample_batch, static_argnames=("batch_size", "seq_len", "exact"))
counts_jit = jax.jit(data.domain_counts)


@functools.cache
def coded_streams() -> data.TokenStreams:
    """Streams whose every token encodes (domain, position)."""
    return data.token_streams(
        [k * STRIDE + np.arange(n) for k, n in enumerate(LENGTHS)], min_length=SEQ_LEN + 1
    )


def check_windows(batch: np.ndarray, seq_len: int = SEQ_LEN) -> np.ndarray:
    """Assert every row is a consecutive in-bounds slice of one stream; return row domains."""
    batch = np.asarray(batch)
    assert batch.dtype == np.int32 and batch.shape[-1] == seq_len + 1
    rows = batch.reshape(-1, seq_len + 1)
    domain, position = rows // STRIDE, rows % STRIDE
    assert (domain == domain[:, :1]).all(), "a row mixes domains (or reads padding)"
    assert (np.diff(position, axis=1) == 1).all(), "a row is not consecutive"
    lengths = np.asarray(LENGTHS)[domain[:, 0]]
    assert (position[:, 0] >= 0).all() and (position[:, -1] < lengths).all(), "out of bounds"
    return domain[:, 0].reshape(batch.shape[:-1])


# --- domain_counts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights, batch_size, expected",
    [
        ([0.25, 0.75], 8, [2, 6]),
        ([1.0], 5, [5]),
        ([0.0, 1.0, 0.0], 7, [0, 7, 0]),
        ([1 / 3, 1 / 3, 1 / 3], 4, [2, 1, 1]),  # a tie: the lower index gets the extra row
        ([1 / 3, 1 / 3, 1 / 3], 3, [1, 1, 1]),
        ([0.0, 0.5, 0.5], 3, [0, 2, 1]),  # a zero weight never gets a leftover row
        ([0.5, 0.0, 0.5], 1, [1, 0, 0]),
        ([0.1, 0.2, 0.3, 0.4], 10, [1, 2, 3, 4]),
        ([0.15, 0.15, 0.7], 10, [2, 1, 7]),
        ([0.01, 0.01, 0.98], 2, [0, 0, 2]),
        ([0.2, 0.3, 0.5], 1, [0, 0, 1]),
    ],
)
def test_domain_counts_examples(weights, batch_size, expected):
    assert np.asarray(counts_jit(jnp.array(weights), batch_size)).tolist() == expected


@settings(max_examples=60, deadline=None)
@given(
    raw=st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 1.0)), min_size=4, max_size=4).filter(
        lambda r: sum(r) > 0
    ),
    batch_size=st.integers(1, 4096),
)
def test_domain_counts_properties(raw, batch_size):
    w = np.asarray(raw) / np.sum(raw)
    counts = np.asarray(counts_jit(jnp.asarray(w, jnp.float32), batch_size))
    ideal = w * batch_size
    assert counts.dtype == np.int32
    assert counts.sum() == batch_size
    assert (counts >= 0).all() and (np.abs(counts - ideal) < 1 + 1e-3).all()
    assert (counts[w == 0] == 0).all()
    # largest remainder: a domain rounded up never has a smaller remainder than one rounded down
    remainder = ideal - np.floor(ideal)
    up, down = counts > np.floor(ideal + 1e-4), counts <= np.floor(ideal + 1e-4)
    if up.any() and down[w > 0].any():
        assert remainder[up].min() >= remainder[down & (w > 0)].max() - 1e-3


@settings(max_examples=40, deadline=None)
@given(
    raw=st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 1.0)), min_size=4, max_size=4).filter(
        lambda r: sum(r) > 0
    ),
    batch_size=st.integers(1, 4096),
    seed=st.integers(0, 2**31 - 1),
)
def test_domain_counts_with_a_key_round_at_random_and_keep_the_sum(raw, batch_size, seed):
    w = np.asarray(raw) / np.sum(raw)
    counts = np.asarray(
        jax.jit(data.domain_counts)(jnp.asarray(w, jnp.float32), batch_size, jax.random.key(seed))
    )
    ideal = w * batch_size
    assert counts.dtype == np.int32 and counts.sum() == batch_size
    assert (counts >= 0).all() and (np.abs(counts - ideal) < 1 + 1e-3).all()
    assert (counts[w == 0] == 0).all()


def test_randomized_counts_keep_every_invariant_at_large_batch_sizes():
    """Flooring the cumulative ideal counts plus an offset in float32 gave, at batch 10^6, a
    sum of batch_size + 1 for 3% of keys, a row to a weight of 0, or a count of -1."""
    keys = jax.random.split(jax.random.key(0), 20_000)
    cases = [
        [0.25, 0.75],
        [0.975801944732666, 0.024198029190301895, 0.0],
        [0.18665256, 0.14817232, 0.54978341, 0.06178872, 0.05360302, 0.0],
        [0.0, 0.5, 0.0, 0.5],
    ]
    for weights in cases:
        w = jnp.asarray(weights, jnp.float32)
        for batch_size in (256, 65_536, 1_000_000):
            counts = np.asarray(
                jax.vmap(lambda k, w=w, b=batch_size: data.domain_counts(w, b, k))(keys)
            )
            ideal = np.asarray(w, np.float64) / float(np.sum(w)) * batch_size
            assert (counts.sum(axis=1) == batch_size).all(), (weights, batch_size)
            assert (counts >= 0).all() and (counts[:, np.asarray(weights) == 0] == 0).all()
            assert (np.abs(counts - ideal) < 1 + 1e-3).all(), (weights, batch_size)


def test_every_domain_gets_its_share_over_many_batches_even_below_one_row():
    """Largest-remainder rounding gave a domain whose share of a batch is below one row the same
    count in every batch: 0.03 at batch 16, or the second domain at batch 1, never got a row,
    so a training run saw another mixture than the one asked for."""
    keys = jax.random.split(jax.random.key(11), 20_000)
    for weights, batch_size in (([0.97, 0.03], 16), ([0.6, 0.4], 1), ([0.5, 0.3, 0.0, 0.2], 7)):
        w = jnp.asarray(weights)
        draw = jax.vmap(lambda k, w=w, b=batch_size: data.domain_counts(w, b, k))
        mean_share = np.asarray(draw(keys)).mean(axis=0) / batch_size
        np.testing.assert_allclose(mean_share, weights, atol=0.01)
    streams = coded_streams()
    rows = jax.vmap(lambda k: sample(streams, jnp.array([0.97, 0.03, 0.0]), k, 16, SEQ_LEN))(
        keys[:2000]
    )
    share = np.bincount(check_windows(rows).ravel(), minlength=3) / rows[..., 0].size
    np.testing.assert_allclose(share, [0.97, 0.03, 0.0], atol=0.005)


# --- sample_batch ------------------------------------------------------------------------------


def test_exact_rows_are_true_windows_in_exact_proportions():
    streams = coded_streams()
    batch = sample(streams, jnp.array([0.25, 0.5, 0.25]), jax.random.key(0), 8, SEQ_LEN)
    assert batch.shape == (8, SEQ_LEN + 1)
    domains = check_windows(batch)
    assert np.bincount(domains, minlength=3).tolist() == [2, 4, 2]
    # a 0.25/0.75 mixture at batch 8 gives exactly 2 and 6 rows
    batch = sample(streams, jnp.array([0.25, 0.0, 0.75]), jax.random.key(1), 8, SEQ_LEN)
    assert np.bincount(check_windows(batch), minlength=3).tolist() == [2, 0, 6]


def test_rows_are_shuffled_and_starts_cover_the_valid_range():
    streams = coded_streams()
    batch = np.asarray(sample(streams, jnp.array([0.5, 0.3, 0.2]), jax.random.key(2), 2000, 11))
    domains = check_windows(batch)
    assert not (np.diff(domains) >= 0).all(), "rows were not shuffled"
    starts = batch[:, 0] % STRIDE
    for k, n in enumerate(LENGTHS):
        seen = set(starts[domains == k].tolist())
        assert seen == set(range(n - SEQ_LEN)), f"domain {k} starts {sorted(seen)}"


def test_same_key_same_batch_other_key_other_batch():
    streams, w = coded_streams(), jnp.array([0.2, 0.5, 0.3])
    a = sample(streams, w, jax.random.key(3), 16, SEQ_LEN)
    b = sample(streams, w, jax.random.key(3), 16, SEQ_LEN)
    c = sample(streams, w, jax.random.key(4), 16, SEQ_LEN)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_inexact_proportions_are_right_in_expectation():
    streams, w = coded_streams(), np.array([0.1, 0.3, 0.6])
    batch = sample(streams, jnp.asarray(w), jax.random.key(5), 20_000, SEQ_LEN, exact=False)
    frequency = np.bincount(check_windows(batch), minlength=3) / 20_000
    np.testing.assert_allclose(frequency, w, atol=0.02)
    # a zero weight is never drawn
    zero = sample(
        streams, jnp.array([0.0, 1.0, 0.0]), jax.random.key(6), 20_000, SEQ_LEN, exact=False
    )
    assert (check_windows(zero) == 1).all()


def test_scan_and_vmap_over_three_mixtures():
    streams = coded_streams()
    mixtures = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.25, 0.75], [0.5, 0.25, 0.25]])
    batch_size, steps = 8, 5

    def step(key, _):
        key, sub = jax.random.split(key)
        keys = jax.random.split(sub, mixtures.shape[0])
        draw = jax.vmap(lambda w, k: data.sample_batch(streams, w, k, batch_size, SEQ_LEN))
        return key, draw(mixtures, keys)

    _, batches = jax.jit(lambda key: jax.lax.scan(step, key, None, length=steps))(jax.random.key(7))
    assert batches.shape == (steps, 3, batch_size, SEQ_LEN + 1)
    domains = check_windows(batches)  # [steps, 3, batch_size]
    expected = np.asarray(jax.vmap(data.domain_counts, (0, None))(mixtures, batch_size))
    for t in range(steps):
        for q in range(3):
            assert np.bincount(domains[t, q], minlength=3).tolist() == expected[q].tolist()
    assert not np.array_equal(batches[0], batches[1]), "steps reused a key"


def test_single_domain_and_byte_streams():
    text = np.frombuffer(b"the quick brown fox jumps over the lazy dog", np.uint8)
    streams = data.token_streams([text])
    batch = sample(streams, jnp.ones(1), jax.random.key(8), 4, 9)
    assert batch.dtype == jnp.int32
    raw = text.tobytes()
    for row in np.asarray(batch):
        assert bytes(row.astype(np.uint8)) in raw


# --- host-side construction and checks ---------------------------------------------------------


def test_token_streams_pads_and_records_lengths():
    streams = data.token_streams([[1, 2, 3], np.array([7], np.uint8), np.arange(5, dtype=np.int64)])
    assert streams.tokens.dtype == jnp.int32 and streams.lengths.dtype == jnp.int32
    assert streams.tokens.shape == (3, 5) and streams.num_domains == 3
    assert np.asarray(streams.lengths).tolist() == [3, 1, 5]
    assert np.asarray(streams.tokens[0]).tolist() == [1, 2, 3, 0, 0]


@pytest.mark.parametrize(
    "streams, kwargs, match",
    [
        ([], {}, "no token streams"),
        ([[1, 2], []], {}, "domain 1 is empty"),
        ([[1, 2], [0.5, 1.5]], {}, "domain 1 has dtype float64: token ids must be integers"),
        ([[1, -2]], {}, "ids must lie in"),
        ([np.zeros((2, 3), int)], {}, "one-dimensional"),
        (np.arange(4), {}, "wrap a single domain in a list"),
        ([[1, 2, 3], [1]], {"min_length": 2, "names": ["a", "b"]}, r"domain 1 \('b'\) has 1"),
        ([[1, 2]], {"names": ["a", "b"]}, "2 names for 1 streams"),
        ([[1, 2], "some text"], {}, r"domain 1 is text \(str\), not token ids.*np.frombuffer"),
        ([b"bytes"], {}, r"domain 0 is text \(bytes\)"),
    ],
)
def test_token_streams_errors(streams, kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.token_streams(streams, **kwargs)


def test_check_streams_names_the_short_domain():
    streams = coded_streams()
    data.check_streams(streams, SEQ_LEN)  # domain 2 has exactly SEQ_LEN + 1 tokens: fine
    with pytest.raises(ValueError, match=r"domain 2 \('tables'\) has 12 tokens.*need 13"):
        data.check_streams(streams, SEQ_LEN + 1, names=["code", "prose", "tables"])
    with pytest.raises(ValueError, match="seq_len must be a positive"):
        data.check_streams(streams, 0)


def test_sample_batch_errors():
    streams, w, key = coded_streams(), jnp.array([0.2, 0.3, 0.5]), jax.random.key(0)
    with pytest.raises(ValueError, match=r"weights has shape \(2,\) but there are 3"):
        data.sample_batch(streams, jnp.array([0.5, 0.5]), key, 4, SEQ_LEN)
    with pytest.raises(ValueError, match="longest domain stream has 73"):
        data.sample_batch(streams, w, key, 4, 73)
    with pytest.raises(ValueError, match="batch_size must be a positive"):
        data.sample_batch(streams, w, key, 0, SEQ_LEN)
    with pytest.raises(ValueError, match="seq_len must be a positive"):
        data.sample_batch(streams, w, key, 4, 2.5)
