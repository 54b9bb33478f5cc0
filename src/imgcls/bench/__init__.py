"""``imgcls bench``: the literature's comparison table — params, GFLOPs, inference and training
speed, memory and, with ``--data --budget``, accuracy under one wall-clock budget — measured on this
machine (``timing``: honest timing; ``roofline``: the machine's matmul GFLOP/s; ``measure``: one
model in its own process; ``table``: the table, CSV and JSON in timm's column names; ``report``: the
HTML page with the accuracy / cost plots and their Pareto fronts).
"""

from .measure import BenchSpec, bench_models

__all__ = ["BenchSpec", "bench_models"]
