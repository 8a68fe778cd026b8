"""Pure-JAX learning: networks, prioritized replay, the offline/online learner. No I/O."""
