"""Stage ``llm-base``: the base causal LM every generative method starts from (tiny Llama + catalogue BPE, pretrained
on a corpus weighted by the world's title prior, or a pointer to a pretrained Hugging Face model), its language-bias
attribution before any fine-tuning (Figs. 2/7) and what its Eq. 2 relevance follows (title prior vs popularity)."""

from pathlib import Path

from lure.layout import LLM_BASE, Prepared
from lure.llm.base import build_base, load_base
from lure.llm.data import load_window_split, sample_windows, title_lookup
from lure.llm.diagnostics import segment_attribution
from lure.llm.evaluate import eq2_correlations, item_relevance
from lure.llm.model import set_torch_threads
from lure.rng import int_seed
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("llm-base") as st:
        cfg = st.spec.eval.llm
        set_torch_threads()
        prepared = Prepared()
        items = prepared.read_items()
        titles = title_lookup(items)
        truth_items = prepared.read_truth_items(columns=["item_id", "title_prior"])  # None on a real dataset
        prior = None
        if truth_items is not None:  # the corpus weights, in the order of the titles
            prior = truth_items.set_index("item_id")["title_prior"].reindex(list(titles)).to_numpy()
        train = load_window_split(prepared, "train")
        sample = sample_windows(
            train, 2000, st.spec.seed, "windows.tokenizer"
        )  # prompts the tokenizer learns merges from
        histories = [[titles[int(i)] for i in h] for h in sample["history"]]
        st.metrics.update(
            build_base(
                st.spec.model,
                list(titles.values()),
                histories,
                int_seed(st.spec.seed, "llm-base.init"),
                Path(LLM_BASE),
                prior=prior,
            )
        )
        model, tokenizer = load_base(Path(LLM_BASE), st.spec.model)
        test = sample_windows(
            load_window_split(prepared, "test"),
            cfg.attribution_samples,
            st.spec.seed,
            "windows.test.attribution",
        )
        attribution = segment_attribution(
            model,
            tokenizer,
            [[titles[int(i)] for i in h] for h in test["history"]],
            [titles[int(i)] for i in test["item_id"]],
            st.spec.model.template,
            include_terminator=cfg.attribution_include_terminator,
        )
        st.metrics["attribution"] = attribution.ratios()  # task ÷ history and first token ÷ history (Fig. 2, before)
        eq2 = item_relevance(
            model,
            tokenizer,
            items["title"].tolist(),
            batch=cfg.rank_batch,
            template=st.spec.model.template,
            include_terminator=cfg.relevance_include_terminator,
        )
        st.metrics["language_prior"] = eq2_correlations(eq2, items, truth_items)  # before fine-tuning
