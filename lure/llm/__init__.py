"""LLM-recommender core: prompt segments, tokenizer, models, catalogue trie, constrained decoding, SFT data.

Modules are imported explicitly (``from lure.llm.generate import rank_catalogue``): importing this package does
not pull in transformers, which takes seconds. See docs/llm.md.
"""
