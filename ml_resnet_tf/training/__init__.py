"""Training: the run's declaration (``config``), data, the cyclic schedule, the optimizer, the
strategy and threads, the trainer that runs the cycles, and the per-epoch recorder."""
