"""Experiments of the paper, runnable from Python and the command line.

- :mod:`~gmp.experiments.batched`: the stacked engine, many small networks at once
  (stacked parameters, per-member Adam, plateau schedules, early stopping);
- :mod:`~gmp.experiments.fit`: the one Keras ``fit`` loop every network is trained by (and
  its module reference);
- :mod:`~gmp.experiments.tasks`: Levy regression and Banana classification (Sec. 4.1,
  Figs. 2–3) as task objects; :mod:`~gmp.experiments.small` runs them
  (``python -m gmp.experiments levy|banana``); :mod:`~gmp.experiments.figures` draws them;
- UCI (Table 1): :mod:`~gmp.experiments.uci_protocol`, the protocols and the settings of a
  run; :mod:`~gmp.experiments.uci_runner`, its units in one process or a pool, resumable;
  :mod:`~gmp.experiments.uci_report`, the results file read into tables and figures; and
  :mod:`~gmp.experiments.uci`, the command line ``gmp-uci``;
- :mod:`~gmp.experiments.distributions`: modes, paired tests and verdicts over many runs;
  :mod:`~gmp.experiments.claims`: every claim of the paper with its verdict.
"""
