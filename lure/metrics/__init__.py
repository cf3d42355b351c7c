"""Metrics of ranked lists, one implementation each: :mod:`lure.metrics.ranking` (HIT, Recall, NDCG and their
building blocks) and :mod:`lure.metrics.fairness` (GDRT's MGU/DGU over relevance groups). Statistics over these
values (bootstrap, paired tests, t intervals) are in :mod:`lure.stats`."""
