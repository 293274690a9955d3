"""The regressor's defaults before 4 Dec 2026 (32 Elman units).

Several benchmarks measured their figures with them, and
``check_equivalence.py`` recorded its entries with them; these settings
keep those runs as they were now that the defaults are others.
"""

FORMER_REGRESSOR_DEFAULTS = dict(
    cell="elman",
    n_hidden=32,
    learning_rate_init=1e-3,
    batch_size=32,
    clip_norm=5.0,
    max_iter=200,
    tol=1e-4,
    n_iter_no_change=10,
)
