"""Command-line binaries (absl) and their flagfiles."""
