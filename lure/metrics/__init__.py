"""Metrics of ranked lists, one implementation each: :mod:`lure.metrics.ranking` (HIT, Recall, NDCG and their
building blocks), :mod:`lure.metrics.fairness` (GDRT's MGU/DGU over relevance groups) and
:mod:`lure.metrics.pairwise` (LURE's PairAUC_IPS and RJS over judged pairs, and the judge's accuracy) and
:mod:`lure.metrics.diversity` (RecLAIF's mean pairwise cosine distance of item-text embeddings).
Statistics over these values (bootstrap, paired tests, t intervals) are in :mod:`lure.stats`."""
