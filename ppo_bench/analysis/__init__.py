"""Turning run folders back into the paper's Table 1 and figures (docs: "Reproduce Table 1").

``scores``: the formulas (a run's score, normalisation, the "best result"), one small function each.
``random_policy``: the random policy's score per environment, measured by the suite.
``runs``: finding runs under run roots, reading their TensorBoard event files, the expected grid.
``table1``: per env × setting table, the Table-1 column and the Markdown report.
``plots``: learning curves and the normalised scores with rliable's interval estimates.
``report``: the ``ppo-bench-report`` command.
"""
