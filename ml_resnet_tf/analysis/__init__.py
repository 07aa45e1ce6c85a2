"""Inference-mode measurements of trained nets and of finished runs: trajectory norms and gains
(``probes``), the lesion study, the dynamic-ensemble view, and the readers of run records that
turn them into savings and recoveries (``savings``)."""
