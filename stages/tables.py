"""Stage ``tables``: every published table of the selected papers, paper | ours | difference | world."""

from lure.layout import TABLES_DIR
from lure.stage import run_stage
from lure.tables.render import render_spec, summarize

if __name__ == "__main__":
    with run_stage("tables") as st:
        st.metrics.update(summarize(render_spec(st.spec.tables, st.dep_metrics(), TABLES_DIR)))
