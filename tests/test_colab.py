"""The Colab notebook is valid JSON and its code cells compile (magics aside)."""

import json
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "colab" / "ferjax_tpu.ipynb"


def test_notebook_code_cells_compile():
    notebook = json.loads(NOTEBOOK.read_text())
    code_cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code_cells
    for cell in code_cells:
        source = "".join(line for line in cell["source"] if not line.lstrip().startswith(("%", "!")))
        compile(source, str(NOTEBOOK), "exec")
    assert any("train_and_evaluate" in "".join(c["source"]) for c in code_cells)
