"""The measurements behind ``make bench``: throughput, memory, and the native PyTorch twin timed
side by side."""
