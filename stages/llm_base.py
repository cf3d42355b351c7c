"""Stage ``llm-base``: the base causal LM every generative method starts from (tiny Llama + catalogue BPE, or a
pointer to a pretrained Hugging Face model), and its language-bias attribution before any fine-tuning (Figs. 2/7)."""

from pathlib import Path

from lure.layout import LLM_BASE, Prepared
from lure.llm.base import build_base, load_base
from lure.llm.data import load_window_split, sample_windows, title_lookup
from lure.llm.diagnostics import segment_attribution
from lure.llm.model import set_torch_threads
from lure.rng import int_seed
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("llm-base") as st:
        set_torch_threads()
        prepared = Prepared()
        titles = title_lookup(prepared.read_items())
        train = load_window_split(prepared, "train")
        sample = sample_windows(
            train, 2000, st.spec.seed, "windows.tokenizer"
        )  # prompts the tokenizer learns merges from
        histories = [[titles[int(i)] for i in h] for h in sample["history"]]
        st.metrics.update(
            build_base(
                st.spec.model, list(titles.values()), histories, int_seed(st.spec.seed, "llm-base.init"), Path(LLM_BASE)
            )
        )
        model, tokenizer = load_base(Path(LLM_BASE), st.spec.model)
        test = sample_windows(
            load_window_split(prepared, "test"),
            st.spec.eval.llm.attribution_samples,
            st.spec.seed,
            "windows.test.attribution",
        )
        attribution = segment_attribution(
            model,
            tokenizer,
            [[titles[int(i)] for i in h] for h in test["history"]],
            [titles[int(i)] for i in test["item_id"]],
            st.spec.model.template,
            include_terminator=st.spec.eval.llm.attribution_include_terminator,
        )
        st.metrics["attribution"] = attribution.ratios()  # task ÷ history and first token ÷ history (Fig. 2, before)
