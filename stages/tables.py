"""Stage ``tables``: every published table of the selected papers, paper | ours | difference."""

from lure.layout import TABLES_DIR
from lure.stage import run_stage
from lure.tables.render import render_spec

if __name__ == "__main__":
    with run_stage("tables") as st:
        rendered = render_spec(st.spec.tables, st.dep_metrics(), TABLES_DIR)
        cells = [c for t in rendered for c in t.cells]
        st.metrics.update(
            tables=len(rendered),
            cells=len(cells),
            cells_with_paper_value=sum(c.paper_value is not None for c in cells),
            cells_mapped=sum(t.n_mapped for t in rendered),
            cells_filled=sum(t.n_filled for t in rendered),
        )
