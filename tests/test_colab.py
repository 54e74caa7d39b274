"""The Colab notebook: valid, and executed top to bottom on a CPU kernel with 8 simulated devices."""

import csv
import json
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "colab" / "ferjax_tpu.ipynb"
KERNEL = "ferjax-test"


def test_notebook_code_cells_compile():
    notebook = json.loads(NOTEBOOK.read_text())
    code_cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code_cells
    for source in code_cells:
        compile(source, str(NOTEBOOK), "exec")
    install = code_cells[0]
    assert "git\", \"clone" in install and "unpack_archive" in install and "find_spec(\"ferjax\") is None" in install
    assert any("train_and_evaluate" in c for c in code_cells)
    assert any("ferjax.evaluate" in c for c in code_cells) and any("ferjax.predict" in c for c in code_cells)
    assert any("drive.mount" in c for c in code_cells)


def kernelspec_for_this_python(root: Path) -> Path:
    """A kernelspec that runs ipykernel with this interpreter (the venv's), under ``root/kernels``."""
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    return root


def test_notebook_runs_top_to_bottom_with_a_tiny_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(kernelspec_for_this_python(tmp_path / "jupyter")))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    monkeypatch.setenv("FERJAX_NOTEBOOK_BUDGET", "tiny")
    workdir = tmp_path / "runs" / "demo"
    monkeypatch.setenv("FERJAX_NOTEBOOK_WORKDIR", str(workdir))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, kernel_name=KERNEL, timeout=300, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError if any cell raises

    text = "\n".join(
        out.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    assert "cpu: 8 devices" in text and "global batch 32 = 4 × 8 devices, bfloat16" in text
    report = json.loads((workdir / "report.json").read_text())
    assert report["devices"] == 8 and report["config"]["dtype"] == "bfloat16" and report["config"]["batch_size"] == 32
    images = [out for cell in notebook.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    assert len(images) == 2  # the training curves and the confusion matrix
    assert (tmp_path / "runs" / "demo_eval" / "evaluation.md").exists()
    with open(tmp_path / "runs" / "demo_pred" / "predictions.csv") as rows:
        assert len(list(csv.DictReader(rows))) == 4
