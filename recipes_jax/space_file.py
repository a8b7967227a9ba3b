"""Space files: the decision space of a real campaign as a small TOML file a person edits.

``recipes-jax init`` writes :data:`EXAMPLE`; :func:`load_space` reads one back into a
:class:`~recipes_jax.space.Space`, with errors that name the key and say how to fix it. TOML
is parsed by the standard library's ``tomllib``: data only, nothing in the file is executed.

Keys (all top level):

- ``domains``: list of K >= 2 unique names, the order of mixture weights.
- ``scales``: model sizes, millions of parameters (numbers, or labels like ``"70M"``, ``"1B"``).
- ``steps``: training steps, a list, or a range ``{start = 500, stop = 19500, step = 500}``
  (``stop`` included). It is also the checkpoint grid of learning curves.
- ``target``: ``{scale = 1000, steps = 19500}``, the run whose metric is optimized.
- ``metric``: the metric's name; ``direction``: ``"minimize"`` or ``"maximize"``.
- ``[cost]`` (optional): ``tokens_per_step`` (for the 6 N D fallback) and/or
  ``gflops_per_step = {"20" = 2.5, ...}`` (GFLOPs per step for each scale). Default: the
  paper's FLOPs table for its scales, 6 N D for others.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from recipes_jax.space import PAPER_TOKENS_PER_STEP, Space, closest_names

__all__ = ["EXAMPLE", "load_space", "parse_space", "write_example"]

#: The example ``recipes-jax init`` writes: the paper's setting, commented.
EXAMPLE = """\
# recipes-jax space file: what to search and what runs cost.
# Edit it for your campaign; check it with: recipes-jax init --check space.toml

# Data domains to mix (K >= 2 unique names); mixtures list weights in this order.
domains = ["RedPajamaWikipedia", "RedPajamaStackExchange", "RedPajamaGithub", "RedPajamaArXiv",
           "RedPajamaBook"]

# Model sizes you can train, millions of parameters (or labels such as "70M", "1B").
scales = [20, 60, 150, 300, 500, 700, 1000]

# Training steps a run may stop at (also where learning curves are read):
# a list, or a range with the stop included.
steps = { start = 500, stop = 19500, step = 500 }

# The run whose metric you want to optimize.
target = { scale = 1000, steps = 19500 }

metric = "eval/RedPajamaStackExchange/CrossEntropyLoss"
direction = "minimize"   # or "maximize" (accuracies)

[cost]
# Tokens per optimizer step, for 6 x parameters x tokens FLOPs at scales without a figure.
tokens_per_step = 524288
# GFLOPs per step for every scale (optional; the paper's figures are built in for its scales):
# gflops_per_step = { "20" = 107036, "60" = 266849, "150" = 617977, "300" = 1219793,
#                     "500" = 1788624, "700" = 2463009, "1000" = 8256873 }
"""

_KEYS = ("domains", "scales", "steps", "target", "metric", "direction", "cost")
_COST_KEYS = ("tokens_per_step", "gflops_per_step")


def _fail(where: str, message: str) -> ValueError:
    return ValueError(f"{where}: {message}")


def _steps(value, where: str) -> list[int]:
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"start", "stop", "step"})
        missing = sorted({"start", "stop", "step"} - set(value))
        if unknown or missing:
            raise _fail(
                where,
                "a steps range needs exactly start, stop and step, e.g. "
                "steps = { start = 500, stop = 19500, step = 500 }"
                + (f"; unknown {unknown}" if unknown else "")
                + (f"; missing {missing}" if missing else ""),
            )
        start, stop, step = value["start"], value["stop"], value["step"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop, step)):
            raise _fail(where, f"start, stop and step must be whole numbers; got {value}")
        if step <= 0 or start <= 0 or stop < start:
            raise _fail(where, f"need 0 < start <= stop and step > 0; got {value}")
        return list(range(start, stop + 1, step))
    if isinstance(value, list):
        return value
    raise _fail(where, f"give a list of steps or a range table; got {value!r}")


def parse_space(text: str, *, source: str = "space file") -> Space:
    """A :class:`Space` from the text of a space file (see the module docstring).

    Raises ``ValueError`` naming ``source``, the key and the fix for anything missing, unknown,
    malformed or inconsistent.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _fail(source, f"not valid TOML ({e}); compare with `recipes-jax init`") from None
    unknown = [k for k in data if k not in _KEYS]
    if unknown:
        hints = "; ".join(f"{k!r} (did you mean {closest_names(k, _KEYS)}?)" for k in unknown)
        raise _fail(source, f"unknown keys {hints}")
    missing = [k for k in _KEYS if k not in data and k != "cost"]
    if missing:
        raise _fail(source, f"missing keys {missing}; `recipes-jax init` writes a full example")
    direction = data["direction"]
    if direction not in ("minimize", "maximize"):
        raise _fail(f"{source}, direction", f"must be 'minimize' or 'maximize'; got {direction!r}")
    if not isinstance(data["metric"], str) or not data["metric"]:
        raise _fail(f"{source}, metric", "give the metric's name as a non-empty string")
    target = data["target"]
    if not isinstance(target, dict) or set(target) != {"scale", "steps"}:
        raise _fail(
            f"{source}, target", f"write target = {{ scale = 1000, steps = 19500 }}; got {target!r}"
        )
    for key in ("domains", "scales"):
        if not isinstance(data[key], list):
            raise _fail(f"{source}, {key}", f"must be a list; got {data[key]!r}")
    cost = data.get("cost", {})
    if not isinstance(cost, dict):
        raise _fail(f"{source}, cost", "must be a table: [cost] with tokens_per_step = ...")
    unknown = [k for k in cost if k not in _COST_KEYS]
    if unknown:
        raise _fail(f"{source}, [cost]", f"unknown keys {unknown}; use {list(_COST_KEYS)}")
    tokens = cost.get("tokens_per_step", PAPER_TOKENS_PER_STEP)
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens <= 0:
        raise _fail(
            f"{source}, cost.tokens_per_step", f"must be a positive integer; got {tokens!r}"
        )
    gflops = cost.get("gflops_per_step")
    if gflops is not None and not isinstance(gflops, dict):
        raise _fail(
            f"{source}, cost.gflops_per_step",
            'must be a table of scale -> GFLOPs per step, e.g. { "20" = 65.1 }',
        )
    steps = _steps(data["steps"], f"{source}, steps")
    try:
        return Space(
            domains=data["domains"],
            scales=data["scales"],
            steps=steps,
            target=(target["scale"], target["steps"]),
            gflops_per_step=gflops,
            tokens_per_step=tokens,
            maximize=direction == "maximize",
            metric=data["metric"],
        )
    except (ValueError, TypeError) as e:
        raise _fail(source, str(e)) from None


def load_space(path: str | os.PathLike) -> Space:
    """The :class:`Space` of the space file at ``path`` (see :func:`parse_space`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"space file {path} not found; `recipes-jax init --space {path}` writes an example"
        )
    from recipes_jax.atomic import read_text

    return parse_space(read_text(path, what="space file"), source=str(path))


def write_example(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write :data:`EXAMPLE` to ``path`` (refusing to replace an existing file unless
    ``overwrite``); returns the path."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --force to replace it")
    from recipes_jax.atomic import atomic_write

    data = EXAMPLE.encode()
    atomic_write(path, lambda f: f.write(data), prefix=".space-")
    return path
