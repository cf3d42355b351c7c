"""ABPO (arXiv 2605.18899): continual updates of an LLM recommender from logged bandit feedback (docs/abpo.md)."""
