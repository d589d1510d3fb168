"""experiment=autotune: Optuna's search space, and the confirmation of its pick in interleaved rounds."""
