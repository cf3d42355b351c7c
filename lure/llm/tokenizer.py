"""A small byte-level BPE tokenizer trained on the catalogue, for the tiny CPU models.

Why train one: a real LLM's tokenizer (128k entries for Llama 3) would make the tiny model's embedding and
output layers dwarf the transformer, and CPU experiments could not run. Byte-level BPE has no unknown token
(every title, in any script, is representable) and a few thousand merges learned on the titles and the rendered
prompts keep sequences short. Training is deterministic: the corpus order is fixed and the trainer is given the
full byte alphabet, so the same titles give the same vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from lure.llm.prompts import PromptTemplate, render_completion, render_prompt

PAD, BOS, EOS = "<pad>", "<s>", "</s>"


def tokenizer_corpus(
    titles: Sequence[str], histories: Sequence[Sequence[str]] = (), template: PromptTemplate | str | None = None
) -> list[str]:
    """Training texts: each title's completion, each rendered prompt, and the history-masked prompt once."""
    corpus = [render_completion(t, template) for t in titles]
    corpus.append(render_prompt([], template, mask=("history",)).text)
    corpus.extend(render_prompt(list(h), template).text for h in histories)
    if not histories:  # still learn the template's own words
        corpus.append(render_prompt(list(titles[:10]), template).text)
    return corpus


def train_tokenizer(
    titles: Sequence[str],
    histories: Sequence[Sequence[str]] = (),
    vocab_size: int = 2000,
    template: PromptTemplate | str | None = None,
    min_frequency: int = 2,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on catalogue titles and prompts; return it with ``<pad>``, ``<s>``, ``</s>``.

    ``histories`` (lists of titles) add realistic prompts; without them one prompt built from the first titles
    is used so the template's words still get merges. Padding side is right: exact ranking relies on padded
    positions coming after the real tokens (causal attention then never lets padding influence them).
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(titles, histories, template), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    fast.padding_side = "right"
    return fast
