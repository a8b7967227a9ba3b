"""Dense linear algebra for the GP: Cholesky factors, triangular solves and inverses.

Two jaxlib 0.10 facts on CPU shape this module.

- Its LAPACK kernels split a *batch* of matrices into tasks on XLA's intra-op thread pool (one
  thread per core) and block until they finish. When every pool thread is blocked that way at
  once, no thread is left to run the tasks and the program hangs. Two independent batched
  calls in one program suffice on 2 cores: a 32-seed ``mf_bo_steps`` sweep on one device
  hung so while a blocked inverse under trial made several batched triangular solves (gdb:
  both pool threads in ``lapack_dtrsm_ffi`` -> ``ParallelBatchMap`` ->
  ``BlockingCounter::Wait``); several CPU devices hang the same way (see
  :mod:`recipes_jax.batching`). So :func:`cholesky` and the solves here, when vmapped on CPU,
  call LAPACK one matrix at a time (``jax.custom_batching.sequential_vmap``): a single matrix
  runs inline on the calling thread and never waits on the pool.
- LAPACK runs on one thread (:mod:`recipes_jax.threads`), and its triangular solve treats the
  identity as a dense right-hand side, while XLA runs matrix products on every core.
  :func:`triangular_inverse` therefore uses no LAPACK at all: it inverts 8 x 8 diagonal
  blocks by a nilpotent series, then merges neighbouring inverted blocks level by level
  (``[[A, 0], [B, D]]^-1 = [[A^-1, 0], [-D^-1 B A^-1, D^-1]]``), all in matrix products.

:func:`triangular_inverse` is jitted as a whole: called outside ``jit`` (in a notebook, say),
op by op, each of its few hundred small operations would compile on its own, seconds per new
shape. (:func:`lower_gram` is not: its result is exactly symmetric op by op, and only to the
last bit once XLA fuses it, which computes the mirrored blocks separately.)

``python benchmarks/gp_inverse.py`` times ``C^-1 = L^-T L^-1`` (:func:`inverse_from_cholesky`)
against two LAPACK triangular solves side by side, with the residual ``|C C^-1 - I|`` of both.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = [
    "LEAF",
    "cho_solve",
    "cholesky",
    "inverse_from_cholesky",
    "leaf_size",
    "lower_gram",
    "small_spd_solve",
    "solve_lower",
    "solve_lower_transposed",
    "times_lower_transposed",
    "triangular_inverse",
]

#: Smallest side of the diagonal blocks :func:`triangular_inverse` and :func:`lower_gram` start
#: from (8 was fastest of 4, 8 and 16 at N = 128..512, one matrix and 64 at once, on 2 cores).
#: For other N a leaf of up to 2 * LEAF - 1 is taken when it pads less (see :func:`leaf_size`).
LEAF = 8


def leaf_size(n: int) -> int:
    """The leaf side, between LEAF and 2 * LEAF - 1, whose power-of-two count of blocks pads an
    [n, n] matrix least (ties: the smaller leaf). Powers of two keep LEAF (n = 512: 8 x 64);
    n = 72 takes 9 x 8 instead of padding to 8 x 16 = 128."""

    return min(range(LEAF, 2 * LEAF), key=lambda leaf: (leaf * _block_count(n, leaf), leaf))


def _block_count(n: int, leaf: int) -> int:
    """The power of two 2^k of leaf-sized diagonal blocks that the smallest padding of an
    [n, n] matrix holds."""
    return 1 << (max(1, -(-n // leaf)) - 1).bit_length()


def _one_matrix_per_lapack_call(fn: Callable) -> Callable:
    """``fn``, except that when it is vmapped on CPU it runs on one batch element at a time
    (``lax.map``), so jaxlib never hands a batch to its thread pool (see the module note).
    Not differentiable: use it inside custom derivative rules or on values only."""
    looped = jax.custom_batching.sequential_vmap(fn)

    @functools.wraps(fn)
    def call(*args):
        return looped(*args) if jax.default_backend() == "cpu" else fn(*args)

    return call


@_one_matrix_per_lapack_call
def cholesky(C: jax.Array) -> jax.Array:
    """Lower Cholesky factor [N, N] of the symmetric positive-definite C [N, N], read from C's
    lower triangle; NaN on failure. Our Gram matrices are symmetric by construction;
    ``jnp.linalg.cholesky`` would average C with its transpose first, and XLA fuses that
    transpose into the Gram's producer, computing every kernel entry twice. Values only: not
    differentiable (``gp.cholesky_with_jitter`` is)."""
    return jax.lax.linalg.cholesky(C, symmetrize_input=False)


@_one_matrix_per_lapack_call
def solve_lower(L: jax.Array, b: jax.Array) -> jax.Array:
    """``L^-1 b`` for a lower-triangular L [N, N] and b [N] or [N, R]. Values only."""
    return jax.scipy.linalg.solve_triangular(L, b, lower=True)


@_one_matrix_per_lapack_call
def solve_lower_transposed(L: jax.Array, b: jax.Array) -> jax.Array:
    """``L^-T b`` for a lower-triangular L [N, N] and b [N] or [N, R]. Values only."""
    return jax.scipy.linalg.solve_triangular(L, b, lower=True, trans="T")


@jax.custom_vjp
def cho_solve(L: jax.Array, b: jax.Array) -> jax.Array:
    """``C^-1 b`` from the lower Cholesky factor L [N, N] of C; b [N] or [N, R].

    Reverse-mode differentiable in L (its lower triangle) and b, by a rule that calls this
    function again, so gradients too take one matrix per LAPACK call when vmapped; forward
    mode (``jax.jvp``) is not supported."""
    return solve_lower_transposed(L, solve_lower(L, b))


def _cho_solve_fwd(L, b):
    x = cho_solve(L, b)
    return x, (L, x)


def _cho_solve_bwd(res, g):
    # x = C^-1 b:  b_bar = C^-1 g,  C_bar = -b_bar x^T,  L_bar = (C_bar + C_bar^T) L (C = L L^T)
    L, x = res
    b_bar = cho_solve(L, g)
    outer = b_bar[:, None] * x[None, :] if x.ndim == 1 else b_bar @ x.T
    return -jnp.tril((outer + outer.T) @ L), b_bar


cho_solve.defvjp(_cho_solve_fwd, _cho_solve_bwd)


def _padded(L: jax.Array, leaf: int) -> tuple[jax.Array, int]:
    """``[[L, 0], [0, I]]`` of side ``leaf * 2^k`` (the smallest that holds L), and 2^k."""
    n = L.shape[-1]
    count = _block_count(n, leaf)
    size = count * leaf
    if size == n:
        return L, count
    return jnp.eye(size, dtype=L.dtype).at[:n, :n].set(L), count


def _blocks(M: jax.Array, side: int, rows, cols) -> jax.Array:
    """Blocks (rows[j], cols[j]) of side ``side`` of the square M, stacked [J, side, side]."""
    count = M.shape[-1] // side
    grid = M.reshape(count, side, count, side)
    return grid[jnp.asarray(rows), :, jnp.asarray(cols), :]


def _below_diagonal(M: jax.Array, side: int, pairs: int) -> jax.Array:
    """For each pair j of neighbouring diagonal blocks (2j, 2j + 1) of side ``side``: the block
    (2j + 1, 2j) below the first, stacked [pairs, side, side]."""
    return _blocks(M, side, range(1, 2 * pairs, 2), range(0, 2 * pairs, 2))


def _merge(top_left: jax.Array, top_right, bottom_left, bottom_right) -> jax.Array:
    """Stacked 2 x 2 block matrices [J, 2s, 2s] from four stacks [J, s, s]."""
    top = jnp.concatenate([top_left, top_right], axis=2)
    bottom = jnp.concatenate([bottom_left, bottom_right], axis=2)
    return jnp.concatenate([top, bottom], axis=1)


def _leaf_inverses(T: jax.Array) -> jax.Array:
    """Inverses [J, s, s] of lower-triangular blocks T [J, s, s]: T = D (I - M) with D its
    diagonal and M strictly lower, so M^s = 0 and (I - M)^-1 = (I + M)(I + M^2)(I + M^4)..."""
    d = jnp.diagonal(T, axis1=1, axis2=2)
    M = -jnp.tril(T / d[:, :, None], -1)
    eye = jnp.eye(T.shape[-1], dtype=T.dtype)
    inverse, power = eye + M, M
    for _ in range(max(0, (T.shape[-1] - 1).bit_length() - 1)):
        power = power @ power
        inverse = inverse + power @ inverse
    return inverse / d[:, None, :]


@functools.partial(jax.jit, static_argnames="leaf")
def triangular_inverse(L: jax.Array, leaf: int | None = None) -> jax.Array:
    """``L^-1`` [N, N] of a lower-triangular L [N, N] (L's strict upper triangle is ignored;
    the result's is zero), in matrix products only. Same dtype; a NaN in L makes the rows
    below it NaN (a failed Cholesky stays detectable). ``vmap``-able, differentiable."""
    n = L.shape[-1]
    leaf = leaf or leaf_size(n)
    P, count = _padded(jnp.tril(L), leaf)
    inverse = _leaf_inverses(_blocks(P, leaf, range(count), range(count)))
    side = leaf
    while inverse.shape[0] > 1:
        pairs = inverse.shape[0] // 2
        A_inv, D_inv = inverse[0::2], inverse[1::2]
        B = _below_diagonal(P, side, pairs)
        inverse = _merge(A_inv, jnp.zeros_like(A_inv), -(D_inv @ (B @ A_inv)), D_inv)
        side *= 2
    return inverse[0, :n, :n]


def lower_gram(M: jax.Array, leaf: int | None = None) -> jax.Array:
    """``M^T M`` [N, N] for a lower-triangular M [N, N] (symmetric by construction), about a
    third of the products of a dense ``M.T @ M``. ``vmap``-able, differentiable."""
    n = M.shape[-1]
    leaf = leaf or leaf_size(n)
    P, count = _padded(jnp.tril(M), leaf)
    diagonal = _blocks(P, leaf, range(count), range(count))
    gram = jnp.swapaxes(diagonal, 1, 2) @ diagonal
    side = leaf
    while gram.shape[0] > 1:
        pairs = gram.shape[0] // 2
        C = _below_diagonal(P, side, pairs)
        D = _blocks(P, side, range(1, 2 * pairs, 2), range(1, 2 * pairs, 2))
        Ct = jnp.swapaxes(C, 1, 2)
        top_right = Ct @ D
        gram = _merge(gram[0::2] + Ct @ C, top_right, jnp.swapaxes(top_right, 1, 2), gram[1::2])
        side *= 2
    return gram[0, :n, :n]


def inverse_from_cholesky(L: jax.Array) -> jax.Array:
    """``C^-1 = L^-T L^-1`` [N, N] from the lower Cholesky factor L [N, N] of C. ``vmap``-able."""
    return lower_gram(triangular_inverse(L))


#: Column-block side of :func:`times_lower_transposed`. At N = 512, of 64, 128 and 256, 128 was
#: fastest (``python benchmarks/screen_product.py``: [4096 x 512] x [512 x 512] float32 plus
#: row sums on 2 cores, 1.19x to 1.38x a dense product in four runs).
PRODUCT_BLOCK = 128


def times_lower_transposed(A: jax.Array, T: jax.Array, block: int = PRODUCT_BLOCK) -> jax.Array:
    """``A @ tril(T).T`` [..., Q, N] for A [..., Q, N] and a lower-triangular T [N, N] (its
    strict upper triangle is ignored), e.g. ``V = Ks L^-T`` of the GP's predictions.

    Computed ``block`` output columns at a time: columns [lo, hi) of the product need only A's
    first hi columns, since T's rows lo..hi-1 are zero past column hi - 1. With N = 512 and
    128-column blocks that is 10/16 of a dense product's multiply-adds. Up to two blocks
    (N <= 2 * ``block``) it is one dense product: at N = 256 two blocks do 3/4 of the work, but
    three runs of the benchmark gave 1.21x, 1.03x and 0.88x. Same dtype as the inputs;
    ``vmap``-able, differentiable.
    """
    n = T.shape[-1]
    if n <= 2 * block:
        return A @ jnp.tril(T).T
    edges = [*range(0, n, block), n]
    columns = [A[..., :hi] @ jnp.tril(T[lo:hi, :hi], lo).T for lo, hi in itertools.pairwise(edges)]
    return jnp.concatenate(columns, axis=-1)


def small_spd_solve(A: jax.Array, B: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(A^-1 B, log det A)`` for a small symmetric positive-definite A [P, P] and B [P] or
    [P, R], by a Cholesky unrolled over P in plain array operations: no LAPACK call (so nothing
    batched reaches jaxlib's thread pool), differentiable and ``vmap``-able. Meant for the few
    coefficients of a GP mean (P up to a few dozen); NaN if A is not positive definite."""
    size = A.shape[-1]
    L = jnp.zeros_like(A)
    for j in range(size):
        diagonal = jnp.sqrt(A[j, j] - jnp.dot(L[j, :j], L[j, :j]))
        L = L.at[j, j].set(diagonal)
        if j + 1 < size:
            L = L.at[j + 1 :, j].set((A[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / diagonal)
    x = jnp.zeros_like(B)
    for j in range(size):  # L y = B
        x = x.at[j].set((B[j] - L[j, :j] @ x[:j]) / L[j, j])
    for j in reversed(range(size)):  # L^T x = y
        x = x.at[j].set((x[j] - L[j + 1 :, j] @ x[j + 1 :]) / L[j, j])
    return x, 2.0 * jnp.sum(jnp.log(jnp.diag(L)))
