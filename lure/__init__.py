"""lure: a reproducible harness for studying bias in LLM-based recommenders."""

__version__ = "0.1.0"
