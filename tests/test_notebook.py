"""The example notebook (examples/walkthrough.ipynb: the planner's, architect's and
analyst's jobs) runs from top to bottom on the ``python3`` kernel that ``pip install -e
'.[test]'`` provides (ipykernel)."""
from pathlib import Path

import nbclient
import nbformat

NOTEBOOK = Path(__file__).parent.parent / "examples" / "walkthrough.ipynb"


def test_example_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
