"""Real text domains available offline on any machine: byte streams built from Python's stdlib.

Every source ships with CPython itself, in the standard-library directory
``os.path.dirname(os.__file__)`` (``site-packages``/``dist-packages``, the ``test`` suites and
``lib-dynload`` are never read), so the data needs no download and no installed package. Tokens
are bytes (vocabulary 256): ``np.frombuffer(text.encode("utf-8"), np.uint8)``. Files are read in
sorted order and nothing is random, so a given Python version always yields the same streams;
each stream is cut at ``max_bytes``.

Training domains (:func:`load_domains`), sizes on CPython 3.11.7 at the default 2,000,000-byte cap
(uncapped in brackets):

- ``code`` (2,000,000 [6,112,335]): stdlib Python source, every docstring and bare string
  statement removed and comments dropped (``ast`` parse, strip, ``ast.unparse``); files that do
  not parse are skipped; the ``encodings`` and ``pydoc_data`` packages are left to the other
  domains.
- ``prose`` (466,196): the language and library reference text in ``pydoc_data/topics.py``
  (the values of its ``topics`` dict, by sorted key): English prose with some grammar and code.
- ``notes`` (132,003): IDLE's plain-text notes (``idlelib/NEWS.txt``, ``NEWS2x.txt``,
  ``HISTORY.txt``, ``README.txt``, ``TODO.txt``, ``extend.txt``, ``CREDITS.txt``) and the
  stdlib's ``LICENSE.txt``: changelogs, release history and license terms. (The proposed
  separate ``license`` domain was dropped: ``LICENSE.txt`` alone is 13,936 bytes, too small for
  a training domain, so it is folded in here.)
- ``tables`` (1,306,817): the raw source of the charmap codecs in ``encodings/``
  (files defining a ``decoding_table``: ``cp*.py``, ``iso8859_*.py``, ``mac_*.py``, ...): hex
  code-point tables with their Unicode character names as comments.

Held-out target (:func:`load_target`, never a training domain; 189,244 bytes): the
docstrings (module, class and function; cleaned with ``inspect.cleandoc``) of stdlib modules
that contain doctest examples (``>>>``), a mix of prose and interactive code, so the best
training mixture should be an interior one (expected, not measured here: presumably mostly
``code`` and ``prose``).

Overlap: ``code`` has its docstrings removed, so the target's text never appears in it as
docstrings, and ``tests/test_text_domains.py`` checks that no sampled 200-byte target window
occurs verbatim in ``code``. Short fragments still overlap: an identifier, or a one-line
statement shown in a doctest. The reference text in ``prose`` documents some of the same
functions, and a handful of its examples may match target doctests verbatim; run this module
(``python -m examples.text_domains``) to see the measured overlap of 200-byte windows per
domain. On CPython 3.11.7, of 4,000 evenly spaced target windows none occurs verbatim in any
domain at 200 bytes; at 100 bytes 2 occur in ``prose``; at 50 bytes 6 in ``prose``, 1 in
``notes`` and none in ``code`` or ``tables``.

Sources that a distribution moved out of the stdlib directory (e.g. Debian ships ``idlelib`` in
a separate ``idle-python3.X`` package) raise ``FileNotFoundError`` naming the missing file.
"""

from __future__ import annotations

import ast
import functools
import importlib
import os
import warnings
from collections.abc import Iterable, Iterator

import numpy as np

__all__ = [
    "DOMAINS",
    "NOTES_FILES",
    "load_domains",
    "load_target",
    "split",
    "stdlib_dir",
]

#: The training domains, in the order :func:`load_domains` returns them.
DOMAINS = ("code", "prose", "notes", "tables")

#: The plain-text files of the ``notes`` domain, relative to the stdlib directory, in order.
NOTES_FILES = (
    "idlelib/NEWS.txt",
    "idlelib/NEWS2x.txt",
    "idlelib/HISTORY.txt",
    "idlelib/README.txt",
    "idlelib/TODO.txt",
    "idlelib/extend.txt",
    "idlelib/CREDITS.txt",
    "LICENSE.txt",
)

# directories never read for python sources (installed packages, tests, compiled extensions)
_SKIP_DIRS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__", "lib-dynload"}
)
# packages left out of the code domain: their text belongs to the tables and prose domains
_NOT_CODE = ("encodings/", "pydoc_data/")
_SEPARATOR = "\n\n"


def stdlib_dir() -> str:
    """The standard-library directory of the running Python (``dirname(os.__file__)``)."""
    return os.path.dirname(os.__file__)


@functools.cache
def _python_files() -> tuple[str, ...]:
    """Relative paths (``/``-separated, sorted) of the stdlib's own ``.py`` files."""
    root = stdlib_dir()
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [
            d for d in subdirs if d not in _SKIP_DIRS and not d.startswith(("config-", "."))
        ]
        rel = os.path.relpath(directory, root)
        for name in files:
            if name.endswith(".py") and not name.startswith("_sysconfigdata"):
                path = name if rel == "." else os.path.join(rel, name)
                found.append(path.replace(os.sep, "/"))
    return tuple(sorted(found))


def _read(rel: str) -> bytes:
    path = os.path.join(stdlib_dir(), *rel.split("/"))
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is missing from this Python's standard library; the text domains need it "
            "(some distributions ship parts of the stdlib, e.g. idlelib, as separate packages)"
        ) from None


def _parse(source: bytes) -> ast.Module | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes in a few old modules
        try:
            return ast.parse(source)
        except (SyntaxError, ValueError):
            return None


def _is_string_statement(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _strip_strings(tree: ast.Module) -> ast.Module:
    """Remove docstrings and every other bare string statement, in place."""
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if not isinstance(body, list) or not body or not isinstance(body[0], ast.stmt):
                continue
            kept = [s for s in body if not _is_string_statement(s)]
            if len(kept) != len(body):
                setattr(node, field, kept or [ast.Pass()])
    return tree


def _join(pieces: Iterable[str], max_bytes: int) -> np.ndarray:
    """UTF-8 bytes of the pieces joined by blank lines, stopping once ``max_bytes`` are had."""
    if int(max_bytes) != max_bytes or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    chunks, total = [], 0
    for piece in pieces:
        chunk = (piece.strip("\n") + _SEPARATOR).encode("utf-8")
        chunks.append(chunk)
        total += len(chunk)
        if total >= max_bytes:
            break
    data = b"".join(chunks)[:max_bytes]
    return np.frombuffer(data, np.uint8)  # read-only: safe to share from the cache


def _code_pieces() -> Iterator[str]:
    for rel in _python_files():
        if rel.startswith(_NOT_CODE):
            continue
        tree = _parse(_read(rel))
        if tree is not None:
            yield ast.unparse(_strip_strings(tree))


def _prose_pieces() -> Iterator[str]:
    topics = importlib.import_module("pydoc_data.topics").topics
    for name in sorted(topics):
        yield topics[name]


def _notes_pieces() -> Iterator[str]:
    for rel in NOTES_FILES:
        yield _read(rel).decode("utf-8", errors="replace")


def _tables_pieces() -> Iterator[str]:
    for rel in _python_files():
        if rel.startswith("encodings/"):
            text = _read(rel).decode("utf-8", errors="replace")
            if "decoding_table = (" in text:
                yield text


def _target_pieces() -> Iterator[str]:
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for rel in _python_files():
        source = _read(rel)
        if b">>>" not in source:
            continue
        tree = _parse(source)
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, kinds):
                doc = ast.get_docstring(node, clean=True)
                if doc and ">>>" in doc:
                    yield doc


_PIECES = {
    "code": _code_pieces,
    "prose": _prose_pieces,
    "notes": _notes_pieces,
    "tables": _tables_pieces,
}


@functools.cache
def _domain(name: str, max_bytes: int) -> np.ndarray:
    return _join(_PIECES[name](), max_bytes)


def load_domains(max_bytes_per_domain: int = 2_000_000) -> dict[str, np.ndarray]:
    """The training domains as byte-token streams (deterministic; cached per size).

    Args:
      max_bytes_per_domain: each stream is cut to at most this many bytes (a positive int).

    Returns:
      ``{name: uint8 [n_name]}`` for the names in :data:`DOMAINS`, in that order (read-only
      arrays; copy before writing). Token ids are byte values, < 256.

    Raises:
      FileNotFoundError naming a source file missing from this Python's stdlib;
      ValueError for a bad ``max_bytes_per_domain``.
    """
    return {name: _domain(name, max_bytes_per_domain) for name in DOMAINS}


@functools.cache
def load_target(max_bytes: int = 2_000_000) -> np.ndarray:
    """The held-out target domain: stdlib docstrings with doctest examples, as bytes.

    Args:
      max_bytes: the stream is cut to at most this many bytes (a positive int; the whole
        target is 189,244 bytes on CPython 3.11.7).

    Returns:
      uint8 ``[n]`` read-only byte tokens (deterministic; cached per size).
    """
    return _join(_target_pieces(), max_bytes)


def split(tokens: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Split a stream into (train, heldout): the last ``fraction`` of it is held out.

    The split is contiguous (no randomness), so held-out windows never overlap training ones.

    Args:
      tokens: ``[n]`` token stream (any dtype).
      fraction: share of the tokens to hold out, strictly between 0 and 1.

    Returns:
      ``(tokens[:n - h], tokens[n - h:])`` with ``h = round(fraction * n)``, views of ``tokens``.

    Raises:
      ValueError if ``fraction`` is outside (0, 1) or either part would be empty.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be one-dimensional, got shape {tokens.shape}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction!r}")
    heldout = round(fraction * tokens.size)
    if heldout == 0 or heldout == tokens.size:
        raise ValueError(
            f"splitting {tokens.size} tokens at fraction {fraction} leaves an empty part: "
            "use a longer stream or a fraction nearer 0.5"
        )
    return tokens[: tokens.size - heldout], tokens[tokens.size - heldout :]


def _overlap(target: np.ndarray, stream: np.ndarray, window: int, count: int) -> int:
    """How many of ``count`` evenly spaced ``window``-byte target windows occur in ``stream``."""
    haystack = stream.tobytes()
    starts = np.linspace(0, target.size - window, count).astype(int)
    return sum(target[s : s + window].tobytes() in haystack for s in starts)


def _main() -> None:
    import time
    import zlib

    start = time.perf_counter()
    domains = load_domains()
    target = load_target()
    seconds = time.perf_counter() - start
    print(f"Python {'.'.join(map(str, __import__('sys').version_info[:3]))}: {stdlib_dir()}")
    print(f"{'domain':<10}{'bytes':>12}{'distinct':>10}{'zlib bits/byte':>16}{'overlap':>10}")
    for name, stream in [*domains.items(), ("target", target)]:
        raw = stream.tobytes()
        bits = 8 * len(zlib.compress(raw, 6)) / len(raw)
        overlap = "" if name == "target" else f"{_overlap(target, stream, 200, 400)}/400"
        print(f"{name:<10}{stream.size:>12,}{len(set(raw)):>10}{bits:>16.2f}{overlap:>10}")
    print(f"loaded in {seconds:.1f} s; overlap = sampled 200-byte target windows found verbatim")


if __name__ == "__main__":
    _main()
