"""Experiments of the paper, runnable from Python and the command line.

- :mod:`~gmp.experiments.batched`: the one engine: many small networks trained at once
  (stacked parameters, per-member Adam, plateau schedules, early stopping);
- :mod:`~gmp.experiments.small`: Levy regression and Banana classification (Sec. 4.1, Figs. 2–3),
  ``python -m gmp.experiments levy|banana``; :mod:`~gmp.experiments.figures` draws them;
- :mod:`~gmp.experiments.uci`: the UCI protocols and ``gmp-uci`` (Table 1), trained by
  :mod:`~gmp.experiments.uci_trainer` and reported by :mod:`~gmp.experiments.uci_report`;
- :mod:`~gmp.experiments.distributions`: modes, paired tests and verdicts over many runs.
"""
