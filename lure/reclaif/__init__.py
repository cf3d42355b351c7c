"""RecLAIF: the paper's tasks (so far ESCI query-to-product retrieval), their instances, baselines and metrics."""
