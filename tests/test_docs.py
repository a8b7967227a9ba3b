"""Every public module, function, class, method and property of recipes_jax has a docstring."""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil

import pytest

import recipes_jax


def _own_doc(obj) -> str | None:
    """The docstring ``obj`` itself declares: not a base class's, nor the signature-only one
    that dataclasses and NamedTuples generate (``Name(a, b)``)."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        if doc and "\n" not in doc.strip() and doc.startswith(f"{obj.__name__}("):
            return None
    else:
        doc = getattr(obj, "__doc__", None)
    return doc if doc and doc.strip() else None


def _function(obj):
    """The plain function behind ``obj`` (through jit/lru_cache/custom_jvp wrappers,
    staticmethod, classmethod, property and cached_property), or None if it is not one."""
    if isinstance(obj, staticmethod | classmethod):
        obj = obj.__func__
    elif isinstance(obj, property):
        obj = obj.fget
    elif isinstance(obj, functools.cached_property):
        obj = obj.func
    if callable(obj) and not inspect.isclass(obj) and hasattr(obj, "__wrapped__"):
        obj = inspect.unwrap(obj)
    return obj if inspect.isfunction(obj) else None


def _documented(obj) -> bool:
    # a wrapper (jit, lru_cache, ...) copies the docstring; either one counts
    return _own_doc(obj) is not None or _own_doc(_function(obj) or obj) is not None


def _missing_docs() -> list[str]:
    missing = []
    modules = [recipes_jax] + [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(recipes_jax.__path__, "recipes_jax.")
    ]
    for module in modules:
        name = module.__name__
        if not _own_doc(module):
            missing.append(f"{name} (module)")
        public = getattr(module, "__all__", None)
        if public is None:
            public = [n for n in vars(module) if not n.startswith("_")]
        for attr in public:
            if not hasattr(module, attr):
                missing.append(f"{name}.{attr} (in __all__ but not defined)")
                continue
            obj = getattr(module, attr)
            target = obj if inspect.isclass(obj) else _function(obj)
            if target is None or getattr(target, "__module__", None) != name:
                continue  # constants, and names imported from elsewhere (checked at home)
            if not _documented(obj):
                missing.append(f"{name}.{attr}")
            if not inspect.isclass(obj):
                continue
            for member, value in vars(obj).items():
                if member.startswith("_") or _function(value) is None:
                    continue
                if not _documented(value):
                    missing.append(f"{name}.{attr}.{member}")
    return missing


def test_every_public_item_has_a_docstring():
    missing = _missing_docs()
    assert not missing, f"{len(missing)} public items lack a docstring:\n" + "\n".join(missing)


def test_the_check_sees_missing_docstrings():
    from dataclasses import dataclass
    from typing import NamedTuple

    @dataclass
    class Point:
        x: int

    class Pair(NamedTuple):
        a: int

    class Documented:
        """Has one."""

        @property
        def size(self) -> int:
            return 0

    def bare():
        pass

    assert _own_doc(Point) is None and _own_doc(Pair) is None
    assert _own_doc(Documented) == "Has one."
    assert _function(vars(Documented)["size"]) is not None
    assert not _documented(vars(Documented)["size"]) and not _documented(bare)
    assert _documented(functools.lru_cache(_own_doc))


@pytest.mark.slow
def test_the_readme_quickstart_runs():
    """The README's Quickstart block, as written, in a fresh interpreter, with XLA's default
    optimization level (as a user runs it; the rest of the suite compiles at the lowest one,
    ``tests/conftest.py``), so one whole campaign is checked at the users' settings."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import without_test_xla_flag

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Quickstart") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    env = without_test_xla_flag(os.environ)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    median_regret = float(done.stdout.split()[0])
    assert 0 <= median_regret < 0.01  # 8 mfms_bo campaigns of 10 target runs
