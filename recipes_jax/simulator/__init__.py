"""Run tables, the jitted simulator built on them, and built-in worlds."""

from recipes_jax.simulator import worlds
from recipes_jax.simulator.loaders import UntrustedFileError
from recipes_jax.simulator.run_table import RunTable
from recipes_jax.simulator.simulator import Simulator

__all__ = ["RunTable", "Simulator", "UntrustedFileError", "worlds"]
