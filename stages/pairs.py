"""Stage ``pairs``: popularity/age-matched item pairs with their IPS weights (LURE Eq. 1) and balance checks."""

from pathlib import Path

from lure.io import write_parquet
from lure.layout import PAIRS, PREPARED, PROPENSITY_MODEL
from lure.pairs import balance_diagnostics, load_candidates, sample_pairs
from lure.propensity.fitted import FittedPropensity
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("pairs") as st:
        cfg = st.spec.pairs
        candidates = load_candidates(cfg.match_on, Path(PREPARED))
        pairs = sample_pairs(cfg, Path(PREPARED), FittedPropensity.load(PROPENSITY_MODEL), st.spec.seed, candidates)
        write_parquet(PAIRS, pairs)
        st.metrics.update(
            {"pairs": len(pairs), **{k: v for k, v in pairs.attrs.items() if isinstance(v, (int, float))}}
        )
        st.metrics.update(balance_diagnostics(pairs, candidates, st.spec.seed))
