"""Training: losses and jitted update steps (pure functions of SplitModel pytrees and optax states)."""
