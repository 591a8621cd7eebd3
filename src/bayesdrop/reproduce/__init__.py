"""Reproductions of published results, run side by side with the papers' numbers.

- :mod:`bayesdrop.reproduce.uci`: the UCI regression table of Gal & Ghahramani (2016), both the
  paper's Table 1 protocol and the authors' later 4,000-epoch grid search
  (``python -m bayesdrop.reproduce.uci --dataset all --setting table1``).

Nothing here is imported by ``import bayesdrop``.
"""

__all__: list[str] = []
