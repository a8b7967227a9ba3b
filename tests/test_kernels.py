"""Kernel families: PSD Gram matrices (hypothesis), fast Gram == tinygp's pairwise path,
BoTorch's formulas for the fidelity kernels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recipes_jax import kernels, optimize


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


K = 4
FAMILIES = {
    "paper": kernels.paper_kernel(),
    "rbf_raw": kernels.rbf("mixture"),
    "matern_sqrt": kernels.matern52_ard("mixture", "sqrt"),
    "rbf_ilr": kernels.rbf("mixture", "ilr"),
    "matern_boxcox_x_fidelity": kernels.matern52_ard("mixture", "box_cox")
    * kernels.rbf("fidelity"),
    "exp_decay": kernels.exponential_decay(),
    "freeze_thaw_product": kernels.rbf("mixture")
    * kernels.exponential_decay()
    * kernels.matern52_ard("scale"),
    "linear_truncated": kernels.linear_truncated_fidelity(),
    "linear_truncated_steps": kernels.linear_truncated_fidelity(fidelity_part="steps"),
    "sum": kernels.rbf("mixture") + kernels.rbf("mixture", "ilr") * kernels.rbf("steps"),
}


def random_inputs(rng, n):
    w = rng.dirichlet(np.full(K, 0.5), n)
    u = rng.uniform(0.0, 1.0, (n, 2))
    u[: n // 3] = 1.0  # some at the target fidelity
    return np.concatenate([w, u], axis=1)


def random_params(family, rng, spread):
    flat, unravel = jax.flatten_util.ravel_pytree(family.init(K))
    return unravel(jnp.asarray(flat) + spread * rng.normal(size=flat.shape))


@jax.jit
def _gram_and_pairwise(kernel, X):
    return kernels.gram(kernel, X, X), kernel(X, X)


@pytest.mark.parametrize("name", sorted(FAMILIES))
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), spread=st.floats(0.0, 2.0), duplicate=st.booleans())
def test_gram_is_psd_and_matches_pairwise(name, seed, spread, duplicate):
    family = FAMILIES[name]
    rng = np.random.default_rng(seed)
    X = random_inputs(rng, 16)
    if duplicate:
        X[1] = X[0]
    kernel = family.build(random_params(family, rng, spread), K)
    G, G_pairwise = (np.asarray(a) for a in _gram_and_pairwise(kernel, jnp.asarray(X)))
    scale = np.abs(G).max()
    assert np.all(np.isfinite(G))
    np.testing.assert_allclose(G, G.T, atol=1e-12 * scale)
    np.testing.assert_allclose(G, G_pairwise, atol=1e-9 * scale)
    np.testing.assert_allclose(np.diag(G), kernels.diag(kernel, jnp.asarray(X)), atol=1e-9 * scale)
    assert np.linalg.eigvalsh(G).min() >= -1e-9 * scale
    assert np.isfinite(float(family.log_prior(random_params(family, rng, spread), K)))


def test_paper_kernel_is_one_line_product_of_rbfs():
    family = kernels.rbf("mixture") * kernels.rbf("scale") * kernels.rbf("steps")
    assert family == kernels.paper_kernel()
    rng = np.random.default_rng(0)
    X = random_inputs(rng, 5)
    params = random_params(family, rng, 0.5)
    k = family.build(params, K)
    parts = [k.kernel1.kernel1, k.kernel1.kernel2, k.kernel2]
    ls = np.concatenate([np.asarray(p.lengthscale) for p in parts])
    d2 = (((X[:, None, :] - X[None, :, :]) / ls) ** 2).sum(-1)
    np.testing.assert_allclose(kernels.gram(k, X, X), np.exp(-0.5 * d2), atol=1e-12)


def test_mfms_kernel_measures_mixtures_by_their_square_roots():
    """rj.mfms_bo's default kernel is the paper's product plus a mixture x scale term, over
    sqrt(w): the same Gram as the raw-weight kernel fed square-rooted mixtures."""
    raw = kernels.mfms_kernel("rbf", "raw")
    assert raw == kernels.paper_kernel() + kernels.rbf("mixture") * kernels.rbf("scale")
    family = kernels.mfms_kernel()
    rng = np.random.default_rng(3)
    X = random_inputs(rng, 7)
    X_sqrt = X.copy()
    X_sqrt[:, :K] = np.sqrt(X[:, :K] + 1e-12)
    params = random_params(family, rng, 0.5)
    got = kernels.gram(family.build(params, K), jnp.asarray(X), jnp.asarray(X))
    expected = kernels.gram(raw.build(params, K), jnp.asarray(X_sqrt), jnp.asarray(X_sqrt))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert not np.allclose(got, kernels.gram(raw.build(params, K), X, X), rtol=1e-3)


def test_linear_truncated_matches_botorch_formula():
    rng = np.random.default_rng(1)
    family = kernels.linear_truncated_fidelity(profile="rbf")
    params = random_params(family, rng, 0.5)
    k = family.build(params, K)
    X = random_inputs(rng, 6)
    X[0, K:] = [1.3, -0.2]  # clamped to [0, 1]
    p = float(k.power)
    f = np.clip(X[:, K:], 0, 1)

    def rbf(ls, a, b):
        return np.exp(-0.5 * (((a[:, None, :K] - b[None, :, :K]) / ls) ** 2).sum(-1))

    k0 = rbf(np.asarray(k.unbiased.lengthscale), X, X)
    k1 = rbf(np.asarray(k.biased.lengthscale), X, X)
    c = [
        np.outer(1 - f[:, i], 1 - f[:, i]) * (1 + np.outer(f[:, i], f[:, i])) ** p for i in range(2)
    ]
    inter = (
        np.outer(1 - f[:, 0], 1 - f[:, 0]) * np.outer(1 - f[:, 1], 1 - f[:, 1]) * (1 + f @ f.T) ** p
    )
    expected = k0 + (c[0] + c[1] + inter) * k1
    np.testing.assert_allclose(kernels.gram(k, X, X), expected, atol=1e-12)
    # at the target fidelity the bias term vanishes
    T = X.copy()
    T[:, K:] = 1.0
    np.testing.assert_allclose(kernels.gram(k, T, T), rbf(np.asarray(k.unbiased.lengthscale), T, T))


def test_exponential_decay_matches_botorch_formula():
    family = kernels.exponential_decay()
    k = family.build(family.init(K), K)
    t = np.array([0.0, 0.3, 1.0])
    X = np.zeros((3, K + 2))
    X[:, K + 1] = t
    w, a, b = float(k.offset), float(k.power), float(k.scale)
    expected = w + b**a / (t[:, None] + t[None, :] + b) ** a
    np.testing.assert_allclose(kernels.gram(k, X, X), expected, rtol=1e-12)


def test_ilr_basis_is_orthonormal_and_zero_sum():
    B = kernels.helmert_basis(5)
    np.testing.assert_allclose(B.T @ B, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(B.sum(0), 0.0, atol=1e-12)


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="unknown input part"):
        kernels.rbf("width")
    with pytest.raises(ValueError, match="mixture representation"):
        kernels.rbf("mixture", "logit")
    with pytest.raises(ValueError, match="only applies to the mixture"):
        kernels.rbf("steps", "ilr")


@pytest.mark.parametrize(
    "name", [*sorted(FAMILIES), "mfms", "box_cox_product", "steps_only", "constant_sum"]
)
def test_grid_gram_equals_the_gram_of_every_decision(name):
    extra = {
        "mfms": kernels.mfms_kernel(),
        "box_cox_product": kernels.rbf("mixture", "box_cox") * kernels.rbf("fidelity"),
        "steps_only": kernels.rbf("steps"),
        "constant_sum": kernels.rbf("scale") + kernels.rbf("mixture", "sqrt"),
    }
    family = FAMILIES.get(name) or extra[name]
    rng = np.random.default_rng(7)
    kernel = family.build(random_params(family, rng, 0.5), K)
    W = rng.dirichlet(np.full(K, 0.5), 6)
    fidelities = rng.uniform(0.0, 1.0, (3, 2))
    X = jnp.asarray(random_inputs(rng, 5))
    decisions, _ = optimize.grid_decisions(jnp.asarray(W), jnp.asarray(fidelities))
    expected = np.asarray(kernels.gram(kernel, decisions, X)).reshape(3, 6, 5)
    got = np.asarray(kernels.grid_gram(kernel, jnp.asarray(W), jnp.asarray(fidelities), X))
    assert got.shape == (3, 6, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    at = kernels.grid_gram_at(kernel, jnp.asarray(W), jnp.asarray(fidelities), X)
    for i in range(3):
        one = np.broadcast_to(np.asarray(at(jnp.asarray(i))), (6, 5))
        np.testing.assert_allclose(one, expected[i], rtol=1e-12, atol=1e-14)


def test_kernel_columns_are_slices_when_consecutive():
    """Every input part's columns are consecutive: a kernel reads them by a slice, which XLA
    fuses (an index array would be a gather, and its gradient a scatter)."""
    X = jnp.arange(2 * 3 * 7.0).reshape(2, 3, 7)
    for columns in [(0, 1, 2, 3, 4), (5,), (5, 6), (1, 3), (6, 0)]:
        np.testing.assert_array_equal(kernels._take_columns(X, columns), X[..., list(columns)])
    kernel = kernels.paper_kernel().build(kernels.paper_kernel().init(5), 5)
    X = jnp.ones((3, 7))
    jaxpr = jax.make_jaxpr(jax.grad(lambda X: kernels.gram(kernel, X, X).sum()))(X)
    primitives = {str(e.primitive) for e in jaxpr.jaxpr.eqns}
    assert not primitives & {"gather", "scatter", "scatter-add"}, primitives


def test_fast_arccos_is_within_its_stated_error():
    x = np.linspace(-1.0, 1.0, 400_001)
    err = np.abs(np.asarray(kernels.fast_arccos(jnp.asarray(x))) - np.arccos(x))
    assert err.max() < 2.5e-8


def _arc_cosine_reference(X1, X2):
    """Cho & Saul's order-1 formula, straight from numpy's arccos."""
    n1, n2 = np.linalg.norm(X1, axis=1), np.linalg.norm(X2, axis=1)
    cos = np.clip(X1 @ X2.T / np.outer(n1, n2), -1.0, 1.0)
    t = np.arccos(cos)
    return np.outer(n1, n2) / np.pi * (np.sin(t) + (np.pi - t) * cos)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), offset=st.floats(0.0, 20.0))
def test_arc_cosine_gram_is_psd_and_matches_the_formula(seed, offset):
    """Near the origin and far from it (where inputs are nearly parallel and the kernel is
    nearly linear), the fast Gram matches the formula, tinygp's pairwise path, and is PSD."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, 4)) + offset * np.eye(4)[0]
    G = np.asarray(kernels.ArcCosine.gram(jnp.asarray(X), jnp.asarray(X)))
    ref = _arc_cosine_reference(X, X)
    np.testing.assert_allclose(G, ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())
    np.testing.assert_allclose(np.asarray(kernels.ArcCosine()(X, X)), G, rtol=1e-10)
    assert np.linalg.eigvalsh(G).min() > -1e-9 * np.abs(G).max()


def test_arc_cosine_bend_is_accurate_in_float32_for_small_angles():
    """The bend (kernel minus its linear part) is tiny for nearly parallel inputs; in float32
    its direct form loses most digits there, the series must not."""
    t = np.linspace(1e-3, np.pi, 20_001)
    exact = (np.sin(t) - t * np.cos(t)) / np.pi
    for dtype, rtol in [(jnp.float64, 2e-6), (jnp.float32, 1e-5)]:
        # feed the float64 angle's cosine rounded to dtype, and compare against the exact
        # bend at that rounded cosine, so only the function's own error is measured
        cos = np.asarray(jnp.asarray(np.cos(t), dtype), np.float64)
        t_rounded = np.arccos(cos)
        want = (np.sin(t_rounded) - t_rounded * cos) / np.pi
        got = np.asarray(kernels.arc_cosine_bend(jnp.asarray(cos, dtype)), np.float64)
        ok = t_rounded > 1e-2
        np.testing.assert_allclose(got[ok], want[ok], rtol=rtol)
    # the whole angular factor is 1 for parallel inputs; near t = pi it is a difference of
    # nearly equal numbers, so only its absolute error is small there
    angular = np.asarray(kernels.arc_cosine_of_cos(jnp.cos(jnp.asarray(t))))
    np.testing.assert_allclose(angular, np.cos(t) + exact, rtol=0, atol=3e-8)


def test_arc_cosine_gradients_are_finite_on_the_diagonal():
    X = jnp.asarray(np.random.default_rng(0).normal(size=(6, 3)))
    grad = jax.grad(lambda s: jnp.sum(kernels.ArcCosine.gram(X * s, X * s)))(1.0)
    assert np.isfinite(grad)
