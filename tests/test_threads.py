"""recipes_jax keeps the LAPACK behind jaxlib's CPU linear algebra single-threaded."""

import json
import os
import subprocess
import sys

import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

from recipes_jax import threads  # noqa: E402

PROBE = (
    "import json, recipes_jax, scipy.linalg.cython_lapack, threadpoolctl;"
    "print(json.dumps([[i['filepath'], i['num_threads']] for i in threadpoolctl.threadpool_info()"
    " if i['user_api'] == 'blas']))"
)


def _blas_threads(env_value):
    env = dict(os.environ)
    env.pop(threads.ENV_VAR, None)
    if env_value is not None:
        env[threads.ENV_VAR] = env_value
    env["OPENBLAS_NUM_THREADS"] = "2"  # a known starting point whatever the machine
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {path: n for path, n in json.loads(done.stdout.strip().splitlines()[-1])}


def test_import_sets_scipys_lapack_to_one_thread_and_leaves_numpys_alone():
    found = _blas_threads(None)
    others = {p: n for p, n in found.items() if "numpy" not in os.path.dirname(p)}
    if not others:
        pytest.skip("no BLAS library besides numpy's is loaded (e.g. scipy uses Accelerate)")
    assert all(n == 1 for n in others.values()), found
    assert all(n == 2 for p, n in found.items() if p not in others), found


def test_the_environment_variable_keeps_or_sets_the_thread_count():
    kept = _blas_threads("keep")
    assert all(n == 2 for n in kept.values()), kept
    two = _blas_threads("2")
    assert all(n == 2 for n in two.values()), two


def test_bad_settings_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        threads.limit_lapack_threads(0)
    os.environ[threads.ENV_VAR] = "many"
    try:
        with pytest.raises(ValueError, match=r"number of threads .* or 'keep'"):
            threads.apply_environment()
    finally:
        del os.environ[threads.ENV_VAR]
