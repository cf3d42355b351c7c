"""The ``reclaif`` section: RecLAIF (He et al., KDD'25 OARS) -- a recommender distilled from a teacher's answers
(§5), then improved by iterative DPO on pairs a judge prefers (Algorithm 1). Read by the ``reclaif-*`` stages;
docs/reclaif.md documents every choice the paper leaves open.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from lure.spec.base import Section, structural
from lure.spec.requests import OpenAIConfig, TransformersConfig
from lure.spec.train import Precision

#: The ``train`` fields RecLAIF's distillation reads (its ``epochs`` are ``reclaif.sft_epochs``).
DISTILL_TRAIN_FIELDS = (
    "batch_size",
    "grad_accum",
    "learning_rate",
    "weight_decay",
    "warmup",
    "scheduler",
    "precision",
    "checkpoint_steps",
)


class SimulatedTeacherSpec(Section):
    """The world's simulated teacher (lure.reclaif.simulated): genres as key preferences, candidates ranked by the
    true relevance with Gumbel noise."""

    name: Literal["simulated"] = Field("simulated", description="Teacher: the world's simulated teacher.")
    noise: float = Field(0.5, ge=0.0, le=100.0, description="Scale of the Gumbel noise on log r(u, i) (0 = truth).")
    preferences: int = Field(2, ge=1, le=5, description="Key preferences named (the history's commonest genres).")


class SimulatedReclaifJudgeSpec(Section):
    """The world's simulated RecLAIF judge (lure.reclaif.simulated): relevance, diversity and explainability scores
    from the truth, the weighted total decides, with controlled errors."""

    name: Literal["simulated"] = Field("simulated", description="Judge: the world's simulated RecLAIF judge.")
    accuracy: float = Field(0.9, ge=0.0, le=1.0, description="Probability of picking the option with the higher total.")
    position_bias: float = Field(0.05, ge=0.0, le=1.0, description="Probability of picking option A regardless.")
    invalid_rate: float = Field(0.02, ge=0.0, le=1.0, description="Probability of a reply cut before its decision.")
    relevance_weight: float = Field(1.0, ge=0.0, le=100.0, description="Weight of s_Rel in the total.")
    diversity_weight: float = Field(0.25, ge=0.0, le=100.0, description="Weight of s_Div in the total.")
    explainability_weight: float = Field(0.25, ge=0.0, le=100.0, description="Weight of s_Exp in the total.")


#: ``reclaif.teacher``: the world's simulated teacher, or any request-layer backend that writes text.
TeacherBackend = Annotated[SimulatedTeacherSpec | OpenAIConfig | TransformersConfig, Field(discriminator="name")]
#: ``reclaif.judge``: the world's simulated judge, or any request-layer backend that writes text.
ReclaifJudgeBackend = Annotated[
    SimulatedReclaifJudgeSpec | OpenAIConfig | TransformersConfig, Field(discriminator="name")
]


def is_simulated(role: object) -> bool:
    """Whether a teacher or judge is the world's simulated one (answers from the truth; world only). Reads only the
    role's ``name``, so a stage that declared just ``reclaif.judge.name`` may ask."""
    return getattr(role, "name") == "simulated"  # noqa: B009


class DpoSpec(Section):
    """One DPO iteration (Eq. 2) through TRL's DPOTrainer."""

    beta: float = Field(0.1, gt=0.0, le=100.0, description="DPO's beta (strength of the reference).")
    epochs: float = Field(1.0, gt=0.0, le=100.0, description="Passes over an iteration's preference pairs.")
    batch_size: int = Field(16, ge=1, le=4096, description="Pairs per step.")
    learning_rate: float = Field(5e-5, gt=0.0, le=1.0, description="Constant learning rate.")
    max_length: int = Field(512, ge=16, le=1_000_000, description="Prompt + answer tokens kept (TRL keep_start).")
    sft_weight: float = Field(
        0.0,
        ge=0.0,
        le=100.0,
        description="Weight of the chosen answer's NLL added to Eq. 2 (0 = DPO as the paper writes it; > 0 = RPO, "
        "Pang et al. 2024, TRL's loss_type ['sigmoid', 'sft']), which keeps a small model from unlearning the format.",
    )
    precision: Precision = Field("auto", description="'auto' = bf16 on a GPU that supports it, float32 on the CPU.")


class ReclaifSpec(Section):
    """RecLAIF on the dataset of ``data``: sequential recommendation from a candidate set (§4.1)."""

    task: Literal["sequential", "retrieval"] = Field(
        "sequential",
        description="'sequential': the next item from a candidate set, from the windows of data (Beauty, LastFM, the "
        "world); 'retrieval': query-to-product on ESCI (§5: 15 candidates, 10 Exact + 5 others, top k; Prec@k, "
        "NDCG@k), read from esci_dir (lure.reclaif.esci); data then only feeds the base model's tokenizer.",
    )
    esci_dir: str | None = Field(
        None,
        min_length=1,
        description="Folder holding the official ESCI files shopping_queries_dataset_{examples,products}.parquet "
        "(task retrieval; github.com/amazon-science/esci-data). Read as they are: replacing the files in place is "
        "not seen by DVC.",
    )
    template: str = Field("reclaif_compact", description="Recommender prompt, prompts/<template>.j2 (reclaif_*).")
    teacher_template: str | None = Field(
        None,
        description="Prompt a model teacher answers, prompts/<teacher_template>.j2. Null: the recommender's own "
        "prompt x (the paper's setting). Set (e.g. the paper's reclaif_music for a model teacher of a student that "
        "reads reclaif_compact): each valid teacher answer is rewritten in answer_style, by its exact candidate "
        "names, to become the SFT target for x. The simulated teacher writes answer_style directly.",
    )
    answer_style: Literal["compact", "paper"] = Field(
        "compact",
        description="Format of the SFT targets: 'compact' (reclaif_compact.j2's quoted names) or the paper's "
        "markdown (§4.1). The simulated teacher writes it; a model teacher's answers are rewritten in it only when "
        "teacher_template is set.",
    )
    judge_template: str = Field("reclaif_judge", description="Judge prompt, prompts/<judge_template>.j2 (§4.2).")
    explain_template: str = Field(
        "reclaif_explain",
        description="Explainability rater's prompt, prompts/<explain_template>.j2 (§5: a score 1-100), sent to the "
        "judge's backend for every valid test answer. The simulated judge needs no prompt: it rates from the truth.",
    )
    items_noun: str = Field("items", min_length=1, description="What the judge's prompts call the items.")
    history: int = Field(10, ge=1, le=200, description="History items in a prompt (Beauty 10, LastFM 20).")
    candidates: int = Field(10, ge=2, le=200, description="Candidates in a prompt (Beauty 10, LastFM 20).")
    k: int = Field(3, ge=1, le=50, description="Items the recommender ranks (the paper's prompts: three).")
    train_prompts: int = Field(600, ge=1, le=10_000_000, description="Training windows the teacher answers (SFT).")
    dpo_prompts: int = Field(256, ge=1, le=10_000_000, description="Training windows sampled twice per iteration.")
    eval_prompts: int = Field(200, ge=1, le=10_000_000, description="Test windows every recommender answers.")
    sft_epochs: float = Field(
        4.0, gt=0.0, le=100.0, description="Distillation passes (the optimiser's other settings: section train)."
    )
    iterations: int = structural(2, ge=0, le=20, description="DPO iterations N of Algorithm 1 (one stage each).")
    temperature: float = Field(1.0, gt=0.0, le=2.0, description="Sampling temperature T of Eq. 4.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus threshold p of Eq. 4.")
    max_new_tokens: int = Field(96, ge=8, le=4096, description="Longest answer generated.")
    generation_batch: int = Field(64, ge=1, le=4096, description="Prompts per generate() call.")
    decoding: Literal["free", "candidates"] = Field(
        "candidates",
        description="'free': the paper's unconstrained generation; 'candidates': item names constrained to the "
        "prompt's candidates, token by token (the tiny CPU model cannot copy a title from its prompt otherwise: "
        "docs/reclaif.md). Needs a template that quotes names (reclaif_compact).",
    )
    reference: Literal["sft", "previous"] = Field(
        "sft",
        description="DPO reference of iteration k: 'sft' (the paper's reading: the distilled model throughout) or "
        "'previous' (iteration k-1's model, as SPRec and RLHFlow iterate).",
    )
    baselines: list[Literal["sasrec", "popularity", "bm25"]] = Field(
        default_factory=lambda: ["sasrec", "popularity"],
        description="Classic recommenders that rank the same test candidates; their answers give no reasons, so no "
        "explainability is rated (lure.reclaif.baselines). Task sequential: 'sasrec' and 'popularity' (Table 3's "
        "SASRec row), fitted on the window training interactions with the eval section's settings. Task retrieval: "
        "'bm25' (Table 2's BM25 row) of the query over the candidates' texts.",
    )
    teacher: TeacherBackend = Field(
        default_factory=SimulatedTeacherSpec,
        description="Who writes the SFT data (§5), picked by 'name': 'simulated' (the world's teacher; world only), "
        "'openai' (any OpenAI-compatible endpoint) or 'transformers' (a Hugging Face causal LM in this process). A "
        "model teacher answers greedily (temperature 0), each answer cached by content (.lure/requests.sqlite).",
    )
    judge: ReclaifJudgeBackend = Field(
        default_factory=SimulatedReclaifJudgeSpec,
        description="Who compares two answers (Eq. 5) and rates explainability (§5), picked by 'name' as the teacher "
        "is. A model judge answers greedily; replies without a decision are not cached, and are dropped and counted.",
    )
    concurrency: int = Field(
        8, ge=1, le=1024, description="Teacher and judge requests in flight at once (1 for a llama.cpp server)."
    )
    request_max_tokens: int = Field(
        768, ge=16, le=100_000, description="Longest teacher answer or judge reply requested, in tokens."
    )
    dpo: DpoSpec = Field(default_factory=DpoSpec, description="DPO's settings (Eq. 2).")

    @field_validator("template", "teacher_template", "judge_template", "explain_template")
    @classmethod
    def _template_exists(cls, name: str | None) -> str | None:
        from lure.layout import is_reclaif_template, prompts_dir, template_names

        if name is None:
            return None
        known = ", ".join(t for t in template_names() if is_reclaif_template(t))
        if not is_reclaif_template(name) or not (prompts_dir() / f"{name}.j2").is_file():
            raise ValueError(f"no RecLAIF prompt prompts/{name}.j2 (known: {known})")
        return name

    @model_validator(mode="after")
    def _task_fits(self) -> ReclaifSpec:
        allowed = {"sequential": {"sasrec", "popularity"}, "retrieval": {"bm25"}}[self.task]
        wrong = [b for b in self.baselines if b not in allowed]
        if wrong:
            raise ValueError(f"baselines {wrong} do not run on task {self.task!r}; it has {sorted(allowed)}")
        if len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"baselines must not repeat, got {self.baselines}")
        if self.task == "retrieval":
            if self.esci_dir is None:
                raise ValueError("task 'retrieval' reads the ESCI files: set esci_dir to their folder")
            simulated = [r for r in ("teacher", "judge") if is_simulated(getattr(self, r))]
            if simulated:
                raise ValueError(
                    f"task 'retrieval': {' and '.join(simulated)} simulated answer from the world's truth, which ESCI "
                    "does not have; give them a model (name: openai or transformers)"
                )
        return self

    @model_validator(mode="after")
    def _constraint_fits(self) -> ReclaifSpec:
        if self.decoding == "candidates" and self.answer_style != "compact":
            raise ValueError(
                "decoding 'candidates' constrains quoted names, which only answer_style 'compact' writes; "
                "use decoding 'free' with answer_style 'paper'"
            )
        return self
