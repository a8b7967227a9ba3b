"""recipes_jax: multi-fidelity, multi-scale Bayesian optimization of LLM data mixtures in JAX.

After "Data Mixture Optimization: A Multi-fidelity Multi-scale Bayesian Framework"
(Yen et al., arXiv 2503.21023). Importing this package never changes global JAX flags.

    import recipes_jax as rj
    space = rj.Space.paper()
    table = rj.RunTable.from_paper_pickle(path, trusted=True)
    sim = rj.Simulator(table, metric="eval/RedPajamaStackExchange/CrossEntropyLoss")
    y = sim(w, m, s)          # w [B, K] mixtures, m [B] scales (millions), s [B] steps
    world = rj.worlds.default()   # built-in world, no files needed

    # the model: GP over encoded decisions [w, u_scale, u_steps], acquisitions, search
    model = rj.gp.GP(rj.kernels.paper_kernel(), space.num_domains)
    params, loss = model.fit(rj.gp.observations(space.encode(w, m, s), y), key)
"""

from recipes_jax import acquisition, gp, kernels, optimize
from recipes_jax.simulator import worlds
from recipes_jax.simulator.run_table import RunTable
from recipes_jax.simulator.simulator import Simulator
from recipes_jax.space import Space

__all__ = [
    "RunTable",
    "Simulator",
    "Space",
    "acquisition",
    "gp",
    "kernels",
    "optimize",
    "worlds",
]
__version__ = "0.1.0"
