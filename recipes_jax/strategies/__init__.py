"""Strategies: MFMS-BO and the baselines, each an (init, ask, tell, recommend) bundle of pure
functions over a state pytree (see :mod:`recipes_jax.strategies.base`)."""

from recipes_jax.strategies.base import (
    LearningCurve,
    Proposal,
    Strategy,
    load_state,
    save_state,
)
from recipes_jax.strategies.bo import (
    Landscape,
    bayes_opt,
    mf_bo_steps,
    mfms_bo,
    single_fidelity_bo,
)
from recipes_jax.strategies.hyperband import hyperband
from recipes_jax.strategies.random_search import random_search

__all__ = [
    "Landscape",
    "LearningCurve",
    "Proposal",
    "Strategy",
    "bayes_opt",
    "hyperband",
    "load_state",
    "mf_bo_steps",
    "mfms_bo",
    "random_search",
    "save_state",
    "single_fidelity_bo",
]
