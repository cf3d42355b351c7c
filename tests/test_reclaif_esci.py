"""ESCI retrieval (lure.reclaif.esci): reading the official parquet files, the instances (filters, 10 + 5 candidates,
determinism, the 60/20/20 split), Prec@5 / NDCG@5 by hand and the BM25 baseline on hand-made documents."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lure.data.sources.base import RawDataMissingError, SourceFormatError
from lure.reclaif.esci import (
    EXAMPLES_FILE,
    INSTANCE_COLUMNS,
    PRODUCTS_FILE,
    bm25_rank,
    bm25_scores,
    esci_instances,
    read_esci,
    retrieval_metrics,
)

KEPT = list(range(1, 9))  # US queries with >= 10 Exact and >= 5 others
FEW_EXACT = 9  # 9 Exact, 6 others
FEW_OTHER = 10  # 10 Exact, 4 others
FOREIGN = {11: "es", 12: "jp"}  # enough of both, but not English
SHARED = "B0SHARED01"  # a product id in the US and the ES catalogues, with different titles


def _query_rows(qid: int, locale: str, n_e: int, n_o: int) -> list[dict]:
    rows = [(f"B{qid:02d}E{j:02d}{locale}", "E") for j in range(n_e)]
    rows += [(f"B{qid:02d}O{j:02d}{locale}", "SCI"[j % 3]) for j in range(n_o)]
    return [
        {"query": f"query {qid} words", "query_id": qid, "product_id": p, "product_locale": locale, "esci_label": lab}
        for p, lab in rows
    ]


def esci_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The official files' rows: 8 kept US queries, one with 9 Exact, one with 4 others, one ES and one JP query."""
    rows = []
    for qid in KEPT:
        rows += _query_rows(qid, "us", 10 + qid % 4, 5 + qid % 3)
    rows[-1]["product_id"] = SHARED  # a non-Exact product of query 8 that query 1 also has (see below)
    rows += _query_rows(FEW_EXACT, "us", 9, 6)
    rows += _query_rows(FEW_OTHER, "us", 10, 4)
    for qid, locale in FOREIGN.items():
        rows += _query_rows(qid, locale, 12, 6)
    rows.append(
        {"query": "query 1 words", "query_id": 1, "product_id": SHARED, "product_locale": "us", "esci_label": "I"}
    )
    rows.append(
        {"query": "query 11 words", "query_id": 11, "product_id": SHARED, "product_locale": "es", "esci_label": "E"}
    )
    examples = pd.DataFrame(rows)
    examples.insert(0, "example_id", np.arange(len(examples)))
    examples["small_version"] = 1
    examples["large_version"] = 1
    examples["split"] = "train"
    products = examples[["product_id", "product_locale"]].drop_duplicates().reset_index(drop=True)
    products["product_title"] = "title " + products["product_id"] + " " + products["product_locale"]
    products["product_description"] = "<p>long description</p>"
    products["product_bullet_point"] = [f"bullet of {p}\nsecond bullet" for p in products.product_id]
    products["product_brand"] = "acme"
    products["product_color"] = "red"
    products = products[
        [
            "product_id",
            "product_title",
            "product_description",
            "product_bullet_point",
            "product_brand",
            "product_color",
            "product_locale",
        ]
    ]
    return examples, products


@pytest.fixture
def esci_folder(tmp_path: Path) -> Path:
    examples, products = esci_frames()
    examples.to_parquet(tmp_path / EXAMPLES_FILE, index=False)
    products.to_parquet(tmp_path / PRODUCTS_FILE, index=False)
    return tmp_path


def test_read_esci_names_file_and_missing_columns(esci_folder: Path) -> None:
    examples, products = esci_frames()
    examples.drop(columns=["esci_label"]).to_parquet(esci_folder / EXAMPLES_FILE, index=False)
    products.drop(columns=["product_title", "product_brand"]).to_parquet(esci_folder / PRODUCTS_FILE, index=False)
    with pytest.raises(SourceFormatError) as err:
        read_esci(esci_folder)
    message = str(err.value)
    assert f"{esci_folder / EXAMPLES_FILE}: missing column(s) esci_label" in message
    assert f"{esci_folder / PRODUCTS_FILE}: missing column(s) product_title, product_brand" in message


def test_read_esci_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RawDataMissingError, match=PRODUCTS_FILE):
        esci_frames()[0].to_parquet(tmp_path / EXAMPLES_FILE, index=False)
        read_esci(tmp_path)


def test_read_esci_rejects_unknown_labels(esci_folder: Path) -> None:
    examples, _ = esci_frames()
    examples.loc[3, "esci_label"] = "X"
    examples.to_parquet(esci_folder / EXAMPLES_FILE, index=False)
    with pytest.raises(SourceFormatError, match=r"shopping_queries_dataset_examples\.parquet: esci_label .* 'X'"):
        read_esci(esci_folder)


def test_read_esci_keeps_us_rows_only(esci_folder: Path) -> None:
    examples, products = read_esci(esci_folder)
    assert set(examples["product_locale"]) == {"us"}
    assert set(products["product_locale"]) == {"us"}
    assert set(examples["query_id"]) == set(KEPT) | {FEW_EXACT, FEW_OTHER}
    # the ES copy of the shared product is gone: one row, the US title
    shared = products[products["product_id"] == SHARED]
    assert shared["product_title"].tolist() == [f"title {SHARED} us"]
    assert not products["product_id"].str.endswith(("es", "jp")).any()


def test_drop_counts(esci_folder: Path) -> None:
    _, _, stats = esci_instances(*read_esci(esci_folder), seed=0)
    assert (stats.queries_read, stats.dropped_few_exact, stats.dropped_few_other) == (10, 1, 1)
    assert (stats.kept, stats.used) == (8, 8)


def test_instances_have_10_exact_and_5_others(esci_folder: Path) -> None:
    examples, products = read_esci(esci_folder)
    instances, catalogue, _ = esci_instances(examples, products, seed=3)
    assert list(instances.columns) == list(INSTANCE_COLUMNS)
    assert sorted(instances["instance_id"]) == sorted(f"esci-{q}" for q in KEPT)
    assert set(instances["task"]) == {"retrieval"}
    assert (instances["user_id"] == -1).all() and (instances["target"] == -1).all()

    assert catalogue["item_id"].tolist() == list(range(len(catalogue)))
    assert catalogue["product_id"].is_unique
    product_of = dict(zip(catalogue["item_id"], catalogue["product_id"], strict=True))
    title_of = dict(zip(catalogue["item_id"], catalogue["title"], strict=True))
    label = {(q, p): lab for q, p, lab in zip(examples.query_id, examples.product_id, examples.esci_label, strict=True)}
    for row in instances.itertuples():
        qid = int(row.instance_id.removeprefix("esci-"))
        assert row.context == [f"query {qid} words"]
        assert len(row.candidates) == 15 and len(set(row.candidates)) == 15
        assert all(isinstance(c, int) for c in row.candidates + row.relevant)
        assert len(row.relevant) == 10 and set(row.relevant) <= set(row.candidates)
        assert row.relevant == [c for c in row.candidates if c in set(row.relevant)]  # in candidate order
        labels = [label[qid, product_of[c]] for c in row.candidates]  # KeyError: a product of another query
        assert [c for c, lab in zip(row.candidates, labels, strict=True) if lab == "E"] == row.relevant
        assert row.candidate_texts == [title_of[c] for c in row.candidates]
        assert all(t.endswith(" us") for t in row.candidate_texts)
    text = catalogue.set_index("product_id").loc[catalogue["product_id"].iloc[0], "text"]
    title = catalogue["title"].iloc[0]
    assert text == f"{title}\nacme\nbullet of {catalogue['product_id'].iloc[0]}\nsecond bullet"


def test_candidates_are_shuffled_and_sampled(esci_folder: Path) -> None:
    instances, _, _ = esci_instances(*read_esci(esci_folder), seed=0)
    # not "10 Exact first, then 5 others" everywhere: the 15 are shuffled
    relevant_first = [set(r.candidates[:10]) == set(r.relevant) for r in instances.itertuples()]
    assert not all(relevant_first)
    # a query with 13 Exact products gets a sample of 10 of them, which differs between seeds
    other, _, _ = esci_instances(*read_esci(esci_folder), seed=1)
    assert instances["candidates"].tolist() != other["candidates"].tolist()


def test_same_seed_same_output_whatever_the_row_order(esci_folder: Path) -> None:
    examples, products = read_esci(esci_folder)
    first = esci_instances(examples, products, seed=7)
    again = esci_instances(examples, products, seed=7)
    shuffled = esci_instances(
        examples.sample(frac=1.0, random_state=1).reset_index(drop=True),
        products.sample(frac=1.0, random_state=2).reset_index(drop=True),
        seed=7,
    )
    for other in (again, shuffled):
        pd.testing.assert_frame_equal(first[0], other[0])
        pd.testing.assert_frame_equal(first[1], other[1])
        assert first[2] == other[2]


def test_a_query_does_not_depend_on_the_others(esci_folder: Path) -> None:
    examples, products = read_esci(esci_folder)
    full, full_catalogue, _ = esci_instances(examples, products, seed=5)
    alone, alone_catalogue, _ = esci_instances(examples[examples["query_id"] == 3], products, seed=5)

    def products_of(instances: pd.DataFrame, catalogue: pd.DataFrame) -> list[str]:
        row = instances.set_index("instance_id").loc["esci-3"]
        return catalogue.set_index("item_id").loc[row["candidates"], "product_id"].tolist()

    assert products_of(full, full_catalogue) == products_of(alone, alone_catalogue)


def test_split_of_the_fixture(esci_folder: Path) -> None:
    instances, _, _ = esci_instances(*read_esci(esci_folder), seed=0)
    # 8 queries: train = round(0.6 * 8) = 5, valid = round(0.8 * 8) - 5 = 1, test = 2
    assert instances["split"].value_counts().to_dict() == {"train": 5, "valid": 1, "test": 2}
    assert instances["split"].tolist() == ["train"] * 5 + ["valid"] + ["test"] * 2  # rows by split


def many_queries(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for qid in range(n):
        rows += _query_rows(qid, "us", 10, 5)
    examples = pd.DataFrame(rows)
    products = pd.DataFrame({"product_id": examples["product_id"].unique()})
    products["product_title"] = "t " + products["product_id"]
    products["product_brand"] = None
    products["product_bullet_point"] = None
    return examples, products


def test_split_proportions_and_max_queries() -> None:
    examples, products = many_queries(100)
    instances, _, stats = esci_instances(examples, products, seed=0)
    assert instances["split"].value_counts().to_dict() == {"train": 60, "valid": 20, "test": 20}
    assert instances["instance_id"].is_unique and stats.kept == stats.used == 100
    # the split is a permutation, not the first 60 query ids
    train = {int(i.removeprefix("esci-")) for i in instances.loc[instances["split"] == "train", "instance_id"]}
    assert train != set(range(60))

    capped, _, stats = esci_instances(examples, products, seed=0, max_queries=50)
    assert capped["split"].value_counts().to_dict() == {"train": 30, "valid": 10, "test": 10}
    assert (stats.kept, stats.used) == (100, 50)
    assert set(capped["instance_id"]) <= set(instances["instance_id"])


def test_instances_reject_bad_arguments() -> None:
    examples, products = many_queries(3)
    with pytest.raises(ValueError, match="ratios"):
        esci_instances(examples, products, seed=0, ratios=(0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="appears twice"):
        esci_instances(pd.concat([examples, examples.head(1)]), products, seed=0)
    with pytest.raises(ValueError, match="products: 1 candidate product"):
        esci_instances(examples, products.iloc[1:], seed=0)
    with pytest.raises(ValueError, match="examples lacks column"):
        esci_instances(examples.drop(columns=["esci_label"]), products, seed=0)


D = [1 / math.log2(r + 1) for r in range(1, 6)]  # D(1..5) = 1, 0.63093, 0.5, 0.43068, 0.38685


def test_retrieval_metrics_by_hand() -> None:
    ranked = [[1, 2, 3, 4, 5, 6], [4, 8, 2], [6, 7, 8, 9, 10, 1], [1, 2, 3, 4, 5]]
    relevant = [[1, 3, 5, 7, 9, 11, 13, 15, 17, 19], [2], [1, 2], [5, 4, 3, 2, 1, 0]]
    got = retrieval_metrics(ranked, relevant, k=5)
    # 0: hits at ranks 1, 3, 5 (6 is past k): Prec = 3/5; DCG = 1 + 0.5 + 0.386853 = 1.886853;
    #    10 relevant -> IDCG(5) = 1 + 0.630930 + 0.5 + 0.430677 + 0.386853 = 2.948459; NDCG = 0.639945
    # 1: only 3 ranked, the hit at rank 3: Prec = 1/5 (missing positions count as misses); DCG = 0.5, IDCG(1) = 1
    # 2: the relevant 1 is at rank 6 > k: Prec = 0, NDCG = 0
    # 3: all 5 relevant: Prec = 1, NDCG = 1 (6 relevant, IDCG(min(6, 5)) = DCG)
    np.testing.assert_allclose(got["prec@5"], [0.6, 0.2, 0.0, 1.0], rtol=1e-15)
    np.testing.assert_allclose(got["ndcg@5"], [1.886852807 / 2.948459119, 0.5, 0.0, 1.0], rtol=1e-9)
    np.testing.assert_allclose(got["ndcg@5"][0], (D[0] + D[2] + D[4]) / sum(D), rtol=1e-15)
    assert got["ndcg@5"][0] == pytest.approx(0.639945, abs=1e-6)
    # k = 2 on list 0: hit at 1, miss at 2: Prec = 1/2, NDCG = 1 / (1 + 0.630930) = 0.613147
    got2 = retrieval_metrics(ranked[:1], relevant[:1], k=2)
    assert got2["prec@2"][0] == 0.5 and got2["ndcg@2"][0] == pytest.approx(0.613147, abs=1e-6)
    assert {k: v.shape for k, v in retrieval_metrics([], [], k=5).items()} == {"prec@5": (0,), "ndcg@5": (0,)}


def test_retrieval_metrics_errors() -> None:
    with pytest.raises(ValueError, match="repeats an item"):
        retrieval_metrics([[1, 1, 2]], [[1]], k=5)
    with pytest.raises(ValueError, match="no relevant item"):
        retrieval_metrics([[1, 2]], [[]], k=5)
    with pytest.raises(ValueError, match="2 ranked lists for 1"):
        retrieval_metrics([[1], [2]], [[1]], k=5)


def bm25_example() -> tuple[pd.DataFrame, pd.DataFrame]:
    catalogue = pd.DataFrame(
        {
            "item_id": [10, 11, 12, 13],
            "product_id": ["A", "B", "C", "D"],
            "title": ["knife", "jacket", "shoes", "mug"],
            "text": [
                "stainless steel kitchen knife",  # none of the query's words
                "blue running jacket",  # one of them
                "red running shoes for men",  # all of them
                "ceramic coffee mug",
            ],
        }
    )
    instances = pd.DataFrame(
        {
            "context": [["red running shoes"], ["the garden hose"]],
            "candidates": [[10, 11, 12], [12, 10, 11]],
        }
    )
    return instances, catalogue


def test_bm25_ranks_the_full_match_first() -> None:
    instances, catalogue = bm25_example()
    ranked = bm25_rank(instances, catalogue)
    assert ranked[0] == [12, 11, 10]  # all query words > one > none
    assert ranked[1] == [12, 10, 11]  # no query word in the corpus: all scores 0, candidate order kept


def test_bm25_scores_are_bm25s_scores() -> None:
    import bm25s
    from bm25s.tokenization import Tokenizer

    instances, catalogue = bm25_example()
    got = bm25_scores(instances, catalogue)
    # the corpus is the distinct candidates (items 10, 11, 12; not the unused 13), scored by bm25s itself
    corpus = catalogue["text"].tolist()[:3]
    tokenizer = Tokenizer(stopwords="en", stemmer=None)
    ids = tokenizer.tokenize(corpus, return_as="ids", show_progress=False)
    index = bm25s.BM25()
    index.index((ids, tokenizer.get_vocab_dict()), show_progress=False)
    query = tokenizer.tokenize(["red running shoes"], update_vocab=False, return_as="ids", show_progress=False)[0]
    np.testing.assert_allclose(got[0], index.get_scores(query), rtol=1e-6)
    assert got[0][0] == 0.0 and 0 < got[0][1] < got[0][2]
    np.testing.assert_array_equal(got[1], [0.0, 0.0, 0.0])


def test_bm25_on_instances_returns_permutations(esci_folder: Path) -> None:
    instances, catalogue, _ = esci_instances(*read_esci(esci_folder), seed=0)
    test = instances[instances["split"] == "test"]
    ranked = bm25_rank(test, catalogue)
    assert [sorted(r) for r in ranked] == [sorted(c) for c in test["candidates"]]
    metrics = retrieval_metrics(ranked, test["relevant"].tolist())
    assert set(metrics) == {"prec@5", "ndcg@5"} and all(len(v) == len(test) for v in metrics.values())


# ------------------------------------------------------------------------------------ the retrieval task end to end


def esci_teacher(body: dict) -> str:
    """A teacher that knows the fixture's secret: Exact products have 'E' after their query number in their id."""
    text = body["messages"][-1]["content"]
    titles = [line[2:] for line in text.splitlines() if line.startswith("- title ")]
    exact = [t for t in titles if re.match(r"title B\d\dE", t)]
    return "Key Preferences:\n- Preference 1: the query's words\n\nRecommended Products:\n" + "\n".join(
        f"{n}. {t} - matches" for n, t in enumerate(exact[:5], start=1)
    )


def test_retrieval_task_builds_esci_prompts_scores_prec_and_ndcg_and_runs_bm25(esci_folder: Path) -> None:
    from lure.layout import Prepared
    from lure.reclaif.baselines import bm25_answers
    from lure.reclaif.loop import judge_texts, label_of
    from lure.reclaif.run import answer_frame, build_data, figure_metrics, part, summarise
    from lure.requests.loopback import LoopbackServer
    from lure.spec.reclaif import ReclaifSpec

    with LoopbackServer(answer=esci_teacher) as server:
        model = {"name": "openai", "base_url": server.url, "model": "t", "api_key_env": None, "max_retries": 0}
        spec = ReclaifSpec(
            task="retrieval",
            esci_dir=str(esci_folder),
            k=5,
            teacher_template="reclaif_retrieval",
            teacher=model,
            judge=model,
            baselines=["bm25"],
            train_prompts=3,
            dpo_prompts=1,
            eval_prompts=2,
        )
        data, catalogue, ledger = build_data(Prepared(esci_folder / "absent"), spec, 0, None)
    assert ledger.as_dict()["requests"] == 6 and catalogue is not None
    assert list(data["part"]) == ["sft"] * 3 + ["dpo"] + ["test"] * 2
    assert data["candidates"].map(len).eq(15).all() and data["relevant"].map(len).eq(10).all()
    assert data["prompt"].iloc[0].startswith('Recommend 5. History: "query ')  # x: the compact prompt, query first
    assert data["teacher_raw"].iloc[0].startswith("Key Preferences:")
    test = part(data, "test")
    titles = dict(zip(catalogue["item_id"], catalogue["title"], strict=True))
    teacher = answer_frame(test, list(test["teacher"]), spec, None, None, None, rate=False)
    assert teacher["valid"].all() and (teacher["prec"] == 1.0).all() and (teacher["ndcg"] == 1.0).all()
    # one Exact product at rank 1, four others after it: Prec@5 = 1/5, NDCG@5 = 1 / IDCG(5)
    row = test.iloc[0]
    others = [t for t, c in zip(row.candidate_texts, row.candidates, strict=True) if int(c) not in set(row.relevant)]
    exact = [t for t, c in zip(row.candidate_texts, row.candidates, strict=True) if int(c) in set(row.relevant)]
    one = "K: q\n" + "\n".join(f'{n}. "{t}" - r' for n, t in enumerate([exact[0], *others[:4]], start=1))
    frame = answer_frame(test.iloc[:1], [one], spec, None, None, None, rate=False)
    assert frame["prec"].iloc[0] == pytest.approx(0.2)
    assert frame["ndcg"].iloc[0] == pytest.approx(1 / sum(1 / math.log2(r + 1) for r in range(1, 6)))
    assert label_of(row) == ", ".join(exact)  # the judge's "Next Preferred": the Exact products
    assert "Next Preferred: " + ", ".join(exact) in judge_texts(test.iloc[:1], [("a", "b")], spec)[0]
    bm25 = answer_frame(test, bm25_answers(test, catalogue, 5, "compact"), spec, titles, None, None, rate=False)
    assert bm25["valid"].all()
    summary = summarise({"teacher": teacher, "bm25": bm25}, 5, 20, 0.95, 0)
    assert {"prec_at_5", "ndcg_at_5", "valid_ratio"} <= set(summary["bm25"]) and "hit_at_1" not in summary["bm25"]
    assert figure_metrics(5, False, "retrieval") == (
        "valid_ratio",
        "prec_at_5",
        "ndcg_at_5",
        "diversity",
        "explainability",
    )


def test_retrieval_task_is_refused_without_its_files_or_with_simulated_roles_or_sequential_baselines() -> None:
    from pydantic import ValidationError

    from lure.spec.reclaif import ReclaifSpec

    model = {"name": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "t", "api_key_env": None}
    roles = {"teacher": model, "judge": model, "baselines": ["bm25"]}
    with pytest.raises(ValidationError, match="set esci_dir"):
        ReclaifSpec(task="retrieval", **roles)
    with pytest.raises(ValidationError, match="teacher and judge simulated"):
        ReclaifSpec(task="retrieval", esci_dir="x", baselines=["bm25"])
    with pytest.raises(ValidationError, match=r"baselines \['sasrec'\] do not run on task 'retrieval'"):
        ReclaifSpec(task="retrieval", esci_dir="x", **{**roles, "baselines": ["sasrec", "bm25"]})
    with pytest.raises(ValidationError, match=r"baselines \['bm25'\] do not run on task 'sequential'"):
        ReclaifSpec(baselines=["bm25"])
