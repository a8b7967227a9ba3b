"""recipes_jax: multi-fidelity, multi-scale Bayesian optimization of LLM data mixtures in JAX.

After "Data Mixture Optimization: A Multi-fidelity Multi-scale Bayesian Framework"
(Yen et al., arXiv 2503.21023). Importing this package never changes global JAX flags; it
does keep scipy's OpenBLAS (jaxlib's CPU LAPACK) to one thread, see :mod:`recipes_jax.threads`.

    import recipes_jax as rj
    space = rj.Space.paper()
    table = rj.RunTable.from_paper_pickle(path, trusted=True)
    sim = rj.Simulator(table, metric="eval/RedPajamaStackExchange/CrossEntropyLoss")
    y = sim(w, m, s)          # w [B, K] mixtures, m [B] scales (millions), s [B] steps
    world = rj.worlds.default()   # built-in world, no files needed

    # the model: GP over encoded decisions [w, u_scale, u_steps], acquisitions, search
    model = rj.gp.GP(rj.kernels.paper_kernel(), space.num_domains)
    params, loss = model.fit(rj.gp.observations(space.encode(w, m, s), y), key)

    # strategies and campaigns
    strategy = rj.mfms_bo(space)       # also random_search, hyperband, mf_bo_steps, ...
    trace = rj.run_campaign(strategy, sim, budget=30.0, key=key)   # one lax.scan
    traces = rj.sweep(strategy, sim, 30.0, jax.random.split(key, 64))

    # your own training code as the objective (see recipes_jax.objectives)
    trace = rj.run_loop(strategy, rj.objective(train_and_eval), 8.0, key, batch_size=4)
"""

from recipes_jax import (
    acquisition,
    analysis,
    cpu_devices,
    data,
    gp,
    kernels,
    ledger,
    optimize,
    space_file,
    strategies,
    threads,
)
from recipes_jax.campaign import Trace, run_campaign, sweep
from recipes_jax.cpu_devices import use_cpu_cores
from recipes_jax.objectives import Objective, objective, run_loop
from recipes_jax.simulator import worlds
from recipes_jax.simulator.run_table import RunTable
from recipes_jax.simulator.simulator import Simulator
from recipes_jax.space import Space
from recipes_jax.strategies import (
    LearningCurve,
    Proposal,
    Strategy,
    bayes_opt,
    hyperband,
    load_state,
    mf_bo_steps,
    mfms_bo,
    random_search,
    save_state,
    single_fidelity_bo,
)

__all__ = [
    "LearningCurve",
    "Objective",
    "Proposal",
    "RunTable",
    "Simulator",
    "Space",
    "Strategy",
    "Trace",
    "acquisition",
    "analysis",
    "bayes_opt",
    "cpu_devices",
    "data",
    "gp",
    "hyperband",
    "kernels",
    "ledger",
    "load_state",
    "mf_bo_steps",
    "mfms_bo",
    "objective",
    "optimize",
    "random_search",
    "run_campaign",
    "run_loop",
    "save_state",
    "single_fidelity_bo",
    "space_file",
    "strategies",
    "sweep",
    "threads",
    "use_cpu_cores",
    "worlds",
]
__version__ = "0.1.0"

threads.apply_environment()
