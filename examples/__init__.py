"""Examples of recipes_jax on real data (not part of the installed package)."""
