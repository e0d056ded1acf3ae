"""Training in JAX, exact to the original's training step (issue 11).

`loop`: the run folder, checkpoints, resume and metrics, for any step function.
"""
