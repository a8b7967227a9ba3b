"""The stdlib text domains: sizes, determinism, byte tokens, and a target disjoint from them."""

from __future__ import annotations

import numpy as np
import pytest

from examples.text_domains import DOMAINS, load_domains, load_target, split


def test_domains_are_large_byte_streams():
    domains = load_domains()
    assert tuple(domains) == DOMAINS and len(DOMAINS) >= 4
    for name, stream in domains.items():
        assert stream.dtype == np.uint8 and stream.ndim == 1, name
        assert 100_000 <= stream.size <= 2_000_000, f"{name} has {stream.size} bytes"
        assert int(stream.max()) < 256
    target = load_target()
    assert target.dtype == np.uint8 and target.size >= 100_000
    assert b">>>" in target.tobytes()


def test_domains_are_clearly_different():
    """Byte unigram distributions differ pairwise (total variation distance > 0.1)."""
    streams = [*load_domains().values(), load_target()]
    hist = [np.bincount(s, minlength=256) / s.size for s in streams]
    for i in range(len(hist)):
        for j in range(i):
            assert 0.5 * np.abs(hist[i] - hist[j]).sum() > 0.1, (i, j)


def test_deterministic_and_caps_are_prefixes():
    full, again = load_domains(), load_domains()
    small = load_domains(max_bytes_per_domain=50_000)  # built afresh, not from the cache
    for name in DOMAINS:
        np.testing.assert_array_equal(full[name], again[name])
        assert small[name].size == 50_000
        np.testing.assert_array_equal(small[name], full[name][:50_000])
    np.testing.assert_array_equal(load_target(20_000), load_target()[:20_000])


def test_target_windows_do_not_appear_in_the_code_domain():
    target, code = load_target(), load_domains()["code"].tobytes()
    starts = np.random.default_rng(0).integers(0, target.size - 200, size=300)
    found = [int(s) for s in starts if target[s : s + 200].tobytes() in code]
    assert not found, f"target windows at {found[:5]} occur verbatim in the code domain"


def test_split_is_contiguous():
    tokens = np.arange(1000)
    train, heldout = split(tokens, 0.1)
    assert train.size == 900 and heldout.size == 100
    np.testing.assert_array_equal(np.concatenate([train, heldout]), tokens)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        split(tokens, 1.0)
    with pytest.raises(ValueError, match="leaves an empty part"):
        split(np.arange(3), 0.01)
    with pytest.raises(ValueError, match="max_bytes must be a positive"):
        load_target(0)
