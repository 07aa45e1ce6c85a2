"""What every binary in ``experiments/`` shares: one-line errors, flag groups, output files and
the queue of training runs."""
