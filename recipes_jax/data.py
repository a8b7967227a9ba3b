"""A jittable data-mixture sampler: batches of token windows drawn from K domain streams.

Each of the K domains is one long stream of token ids. :func:`token_streams` pads them into a
:class:`TokenStreams` pytree (``tokens`` int32 ``[K, N]``, ``lengths`` int32 ``[K]``), and
:func:`sample_batch` draws a batch of ``seq_len + 1`` consecutive tokens per row, the rows'
domains following a mixture ``weights`` ``[K]``, so a language-model training step reads
``inputs = batch[:, :-1]`` and ``targets = batch[:, 1:]``. Everything after
:func:`token_streams` is pure and jittable (``batch_size`` and ``seq_len`` static), and works
under ``lax.scan`` and under ``vmap`` over mixtures and keys, e.g. to train q models on q
mixtures in one program::

    streams = token_streams([code, prose, tables], min_length=seq_len + 1)
    sample = jax.jit(sample_batch, static_argnames=("batch_size", "seq_len", "exact"))
    batch = sample(streams, weights, key, batch_size=64, seq_len=256)      # int32 [64, 257]
    batches = jax.vmap(lambda w, k: sample_batch(streams, w, k, 64, 256))(W, keys)  # [q, 64, 257]

A domain stream must hold at least ``seq_len + 1`` tokens to be sampled: inside a jitted
function that cannot be checked (the lengths are traced), so check on the host once with
:func:`check_streams` (or ``token_streams(..., min_length=seq_len + 1)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "TokenStreams",
    "check_streams",
    "domain_counts",
    "sample_batch",
    "token_streams",
]

_INT32_MAX = np.iinfo(np.int32).max


class TokenStreams(NamedTuple):
    """K domains' token streams, padded to a common length (a pytree; jit and vmap friendly).

    tokens: int32 ``[K, N]``; row k holds domain k's tokens in ``[:lengths[k]]`` and padding
      (zeros, never read by :func:`sample_batch`) after; N is the longest stream's length.
    lengths: int32 ``[K]``, the true number of tokens of each domain (each >= 1).
    """

    tokens: jax.Array
    lengths: jax.Array

    @property
    def num_domains(self) -> int:
        """K, the number of domains (static: from the array shape)."""
        return self.tokens.shape[0]


def _domain_name(k: int, names: Sequence[str] | None) -> str:
    return f"domain {k} ({names[k]!r})" if names is not None else f"domain {k}"


def token_streams(
    streams: Sequence[np.ndarray | Sequence[int]],
    *,
    min_length: int = 1,
    names: Sequence[str] | None = None,
) -> TokenStreams:
    """Pad K domain streams of token ids into a :class:`TokenStreams` (host side, not jittable).

    Args:
      streams: K >= 1 one-dimensional sequences of non-negative integer token ids (numpy
        arrays of any integer dtype, e.g. uint8 bytes, or lists of ints), one per domain.
      min_length: the fewest tokens a stream may have; pass ``seq_len + 1`` to check up front
        that every domain can be sampled by ``sample_batch(..., seq_len=seq_len)``.
      names: optional K domain names, used in error messages.

    Returns:
      ``TokenStreams(tokens int32 [K, N], lengths int32 [K])`` with N the longest length.

    Raises:
      ValueError naming the offending domain: no streams, a stream that is empty, not
      one-dimensional, not integer, negative or beyond int32, or shorter than ``min_length``.
    """
    if isinstance(streams, np.ndarray) and streams.ndim == 1:
        raise ValueError(
            "streams must be a sequence of K token streams, got one 1-D array: "
            "wrap a single domain in a list, e.g. token_streams([tokens])"
        )
    streams = list(streams)
    if not streams:
        raise ValueError("no token streams given: pass a list of K >= 1 domain streams")
    if names is not None and len(names) != len(streams):
        raise ValueError(f"got {len(names)} names for {len(streams)} streams; give one per stream")
    if int(min_length) != min_length or min_length < 1:
        raise ValueError(f"min_length must be a positive integer, got {min_length!r}")
    arrays = []
    for k, stream in enumerate(streams):
        what = _domain_name(k, names)
        if isinstance(stream, str | bytes):
            raise ValueError(
                f"{what} is text ({type(stream).__name__}), not token ids: tokenize it first, "
                "e.g. bytes as tokens: np.frombuffer(text.encode('utf-8'), np.uint8)"
            )
        array = np.asarray(stream)
        if array.ndim != 1:
            raise ValueError(
                f"{what} has shape {array.shape}: each stream must be one-dimensional "
                "(concatenate documents into one stream per domain)"
            )
        if array.size == 0:
            raise ValueError(f"{what} is empty: every domain needs at least {min_length} tokens")
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"{what} has dtype {array.dtype}: token ids must be integers "
                "(e.g. np.frombuffer(text.encode('utf-8'), np.uint8) for bytes)"
            )
        if array.min() < 0 or array.max() > _INT32_MAX:
            raise ValueError(
                f"{what} has token ids in [{array.min()}, {array.max()}]: "
                f"ids must lie in [0, {_INT32_MAX}] (int32)"
            )
        if array.size < min_length:
            raise ValueError(
                f"{what} has {array.size} tokens, fewer than min_length={min_length}: "
                "give it more text or sample shorter sequences"
            )
        arrays.append(array)
    lengths = np.array([a.size for a in arrays], dtype=np.int32)
    tokens = np.zeros((len(arrays), int(lengths.max())), dtype=np.int32)
    for k, array in enumerate(arrays):
        tokens[k, : array.size] = array
    return TokenStreams(tokens=jnp.asarray(tokens), lengths=jnp.asarray(lengths))


def check_streams(
    streams: TokenStreams, seq_len: int, *, names: Sequence[str] | None = None
) -> None:
    """Check on the host that every domain can be sampled with ``seq_len`` (not jittable).

    Each domain needs at least ``seq_len + 1`` tokens (one window of inputs plus the shifted
    targets); :func:`sample_batch` cannot check that under jit.

    Args:
      streams: the :class:`TokenStreams` to check.
      seq_len: the model's sequence length in tokens (a positive int).
      names: optional K domain names, used in the error message.

    Raises:
      ValueError naming every domain shorter than ``seq_len + 1`` tokens, or for a bad seq_len.
    """
    _check_positive_int(seq_len, "seq_len")
    lengths = np.asarray(streams.lengths)
    if names is not None and len(names) != lengths.shape[0]:
        raise ValueError(f"got {len(names)} names for {lengths.shape[0]} domains")
    short = [k for k in range(lengths.shape[0]) if lengths[k] < seq_len + 1]
    if short:
        listed = ", ".join(f"{_domain_name(k, names)} has {int(lengths[k])}" for k in short)
        raise ValueError(
            f"domain streams too short for seq_len={seq_len}: {listed} tokens but windows need "
            f"{seq_len + 1}; lower seq_len or give those domains more text"
        )


def _check_positive_int(value, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{what} must be a positive Python int (static under jit), got {value!r}")


def _normalized(weights: jax.Array) -> jax.Array:
    """Weights clipped at 0 and divided by their sum (float32 ``[K]``)."""
    w = jnp.maximum(jnp.asarray(weights, jnp.float32), 0.0)
    return w / jnp.sum(w)


def domain_counts(weights: jax.Array, batch_size: int, key: jax.Array | None = None) -> jax.Array:
    """How many of ``batch_size`` rows each domain gets (jittable): each count is
    ``floor(w_k * batch_size)`` or one more, and they sum to ``batch_size`` exactly.

    Without ``key``, largest-remainder rounding: the rows left over go one each to the domains
    with the largest remainders (ties to the lower domain index; never to a domain of weight
    0). A 0.25/0.75 mixture at batch 8 gives exactly [2, 6]; but a domain whose
    ``w_k * batch_size`` loses the rounding gets the same count in every batch (0.03 at batch
    16: no row, ever).

    With ``key``, the rounding is randomized (systematic sampling: the cumulative ideal counts
    are floored after a shift by one uniform draw), so each count's expectation is exactly
    ``w_k * batch_size``: over many batches each domain gets its share (0.03 at batch 16: one
    row in 48% of batches, none in the rest). A whole ``w_k * batch_size`` is still exact in
    every batch (up to float32 rounding of the remainders). :func:`sample_batch` rounds
    this way.

    Args:
      weights: float ``[K]`` non-negative domain weights summing to 1 (they are clipped at 0
        and renormalized, which cannot be checked under jit; all-zero weights give garbage).
      batch_size: the number of rows (an int, or an int scalar array: need not be static).
        Exact for batch sizes up to about 10^6 (float32 arithmetic).
      key: optional ``jax.random`` key for the randomized rounding.

    Returns:
      int32 ``[K]`` row counts.
    """
    w = _normalized(weights)
    ideal = w * jnp.asarray(batch_size, jnp.float32)
    base = jnp.floor(ideal)
    short = jnp.maximum(jnp.asarray(batch_size, jnp.int32) - jnp.sum(base.astype(jnp.int32)), 0)
    if key is not None:
        # the rows left over (fewer than K) go by systematic sampling over the remainders:
        # small numbers, so float32 loses nothing that matters; the edges are clipped to
        # [0, short], and from the last domain of positive weight on they are exactly
        # `short`, so the counts sum to batch_size and a weight of 0 never gets a row
        remainder = jnp.where(w > 0, ideal - base, 0.0)
        edges = jnp.floor(jnp.cumsum(remainder) + jax.random.uniform(key, (), jnp.float32))
        edges = jnp.clip(edges.astype(jnp.int32), 0, short)
        last = w.shape[0] - 1 - jnp.argmax((w > 0)[::-1])
        edges = jnp.where(jnp.arange(w.shape[0]) >= last, short, jax.lax.cummax(edges))
        extra = jnp.diff(edges, prepend=jnp.zeros((1,), edges.dtype))
        return base.astype(jnp.int32) + extra
    remainder = jnp.where(w > 0, ideal - base, -1.0)
    order = jnp.argsort(-remainder, stable=True)
    rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0], dtype=order.dtype))
    return base.astype(jnp.int32) + (rank < short).astype(jnp.int32)


def sample_batch(
    streams: TokenStreams,
    weights: jax.Array,
    key: jax.Array,
    batch_size: int,
    seq_len: int,
    *,
    exact: bool = True,
) -> jax.Array:
    """A batch of random token windows, domains drawn by a mixture (jittable; vmap/scan safe).

    Row i is ``seq_len + 1`` consecutive tokens of one domain d_i, starting uniformly at random
    in ``0 .. lengths[d_i] - seq_len - 1`` (so padding is never read); a model trains on
    ``inputs = batch[:, :-1]``, ``targets = batch[:, 1:]``.

    Requires every domain with positive weight to hold at least ``seq_len + 1`` tokens. This is
    not checked here (lengths are traced under jit); a shorter domain yields windows that run
    into its padding. Check once on the host with :func:`check_streams`.

    Args:
      streams: the :class:`TokenStreams` (tokens int32 ``[K, N]``, lengths int32 ``[K]``).
      weights: float ``[K]`` non-negative mixture weights summing to 1 (clipped at 0 and
        renormalized; not checked under jit).
      key: a ``jax.random`` key; the same key gives the same batch.
      batch_size: rows per batch (static int).
      seq_len: tokens of model input per row (static int); rows hold ``seq_len + 1`` tokens.
      exact: if True (default) each domain gets ``floor(w_k * batch_size)`` rows or one
        more, summing to ``batch_size`` (:func:`domain_counts` with the key: the rounding is
        random, so each domain's expected share is exactly ``w_k``, also when
        ``w_k * batch_size`` is below one row), and the rows are shuffled; if False each row's
        domain is an independent categorical draw, so the counts vary more around the same
        expectation.

    Returns:
      int32 ``[batch_size, seq_len + 1]`` token ids.

    Raises:
      ValueError (at trace time) for a non-positive or non-int ``batch_size``/``seq_len``,
      ``weights`` not of shape ``[K]``, or ``seq_len + 1`` beyond the longest stream.
    """
    _check_positive_int(batch_size, "batch_size")
    _check_positive_int(seq_len, "seq_len")
    num_domains, max_length = streams.tokens.shape
    weights = jnp.asarray(weights)
    if weights.shape != (num_domains,):
        raise ValueError(
            f"weights has shape {weights.shape} but there are {num_domains} domain streams: "
            f"give one weight per domain, shape ({num_domains},) (vmap for several mixtures)"
        )
    if seq_len + 1 > max_length:
        raise ValueError(
            f"seq_len={seq_len} needs windows of {seq_len + 1} tokens but the longest domain "
            f"stream has {max_length}: lower seq_len or give the domains more text"
        )
    key_domain, key_start = jax.random.split(key)
    if exact:
        ends = jnp.cumsum(domain_counts(weights, batch_size, jax.random.fold_in(key_domain, 1)))
        domains = jnp.searchsorted(ends, jnp.arange(batch_size), side="right")
        domains = jax.random.permutation(key_domain, domains)
    else:
        domains = jax.random.categorical(
            key_domain, jnp.log(_normalized(weights)), shape=(batch_size,)
        )
    domains = jnp.minimum(domains, num_domains - 1).astype(jnp.int32)
    num_starts = jnp.maximum(streams.lengths[domains] - seq_len, 1)
    starts = jax.random.randint(key_start, (batch_size,), 0, num_starts, dtype=jnp.int32)
    columns = starts[:, None] + jnp.arange(seq_len + 1, dtype=jnp.int32)[None, :]
    return streams.tokens[domains[:, None], columns].astype(jnp.int32)
