"""Export (issue 9): a StableHLO artifact that runs with jax alone, a TFLite file that runs with LiteRT."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from ferjax import export, run
from ferjax.checkpoint import Checkpoints
from ferjax.errors import ConfigError, MissingExtra, RunError
from ferjax.models.classifier import build_model
from tests import toy_data
from tests.test_train import toy_config

ROOT = Path(__file__).resolve().parents[1]
CLASSES = [f"c{i}" for i in range(7)]
MODELS = {
    "baseline_cnn": {},
    # Transposed convolutions, an auxiliary classifier (training only) and, at 16 px on CPU, every
    # convolution on the im2col path in TrainedModel: the export must trace XLA's instead.
    "emosynthnet": {"model": "emosynthnet", "models.emosynthnet.width": 1 / 16},
}

# Runs in a fresh interpreter that has jax but must not import ferjax or flax.
JAX_ONLY = """
import sys
import jax, numpy as np
artifact, images, out = sys.argv[1:]
exported = jax.export.deserialize(bytearray(open(artifact, "rb").read()))
x = np.load(images)
batch, single = exported.call(x), exported.call(x[:1])
np.savez(out, probabilities=batch["probabilities"], logits=batch["logits"], single=single["probabilities"])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("ferjax", "flax"))
assert not loaded, loaded
"""


def build_run(workdir: Path, **overrides) -> Path:
    """A run directory as the trainer leaves it (run.json, a checkpoint), without training or
    initialising (slow for EmoSynthNet): He-scaled random weights, random BatchNorm statistics."""
    toy_data.register()
    config = toy_config(**overrides)
    model, _ = build_model(config, len(CLASSES))
    shapes = jax.eval_shape(lambda: run.init_variables(model, config, 0))
    rng = np.random.default_rng(0)

    def draw(path, leaf):
        name, shape = path[-1].key, leaf.shape
        if len(shape) > 1:  # a kernel
            value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:-1])), shape)
        elif name == "var":
            value = rng.uniform(0.5, 2.0, shape)
        else:  # biases, BatchNorm scales, offsets and means
            value = (name == "scale") + rng.normal(0.0, 0.3, shape)
        return value.astype(leaf.dtype)

    variables = jax.tree_util.tree_map_with_path(draw, shapes)
    state = run.TrainState(step=np.int32(0), params=variables["params"], batch_stats=variables["batch_stats"],
                           opt_state=optax.sgd(0.1).init(variables["params"]))
    workdir.mkdir(parents=True, exist_ok=True)
    run.write_record(workdir, run.make_record(config, toy_data.NAME, CLASSES))
    checkpoints = Checkpoints(workdir)
    checkpoints.save(0, state, {})
    checkpoints.wait()
    checkpoints.close()
    return workdir


@pytest.fixture(scope="module", params=list(MODELS))
def exported(request, tmp_path_factory):
    """(trained model, images, StableHLO artifact) for each model."""
    workdir = build_run(tmp_path_factory.mktemp(request.param), **MODELS[request.param])
    model = run.load_run(workdir, batch_size=8)
    images = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 1), dtype=np.uint8)
    artifact = export.export_run(workdir, "stablehlo", workdir / "model.stablehlo")
    return model, images, artifact


def test_stablehlo_artifact_runs_without_ferjax_and_matches_the_trained_model(exported, tmp_path):
    model, images, artifact = exported
    np.save(tmp_path / "images.npy", images)
    subprocess.run(
        [sys.executable, "-c", JAX_ONLY, str(artifact), str(tmp_path / "images.npy"), str(tmp_path / "out.npz")],
        cwd=tmp_path, env=dict(os.environ, JAX_PLATFORMS="cpu"), check=True, timeout=300,
    )
    got = np.load(tmp_path / "out.npz")
    expected = model.probabilities(images)  # traced at batch 8; the artifact ran at 5 and 1
    np.testing.assert_allclose(got["probabilities"], expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got["logits"], model.logits(images), atol=1e-4, rtol=0)
    np.testing.assert_allclose(got["single"], expected[:1], atol=1e-5, rtol=0)


def test_stablehlo_artifact_is_the_inference_graph_with_xla_convolutions(exported):
    model, _, artifact = exported
    loaded = jax.export.deserialize(bytearray(artifact.read_bytes()))
    (images,) = loaded.in_avals
    assert images.dtype == np.uint8 and images.shape[1:] == (16, 16, 1) and not isinstance(images.shape[0], int)
    assert [a.shape[1:] for a in loaded.out_avals] == [(7,), (7,)]  # logits, probabilities: no aux head
    # Every kernel is an XLA convolution's operand (im2col would reshape it for a matmul).
    kernels = {"x".join(map(str, leaf.shape)) + "xf32" for path, leaf in jax.tree_util.tree_leaves_with_path(
        model.variables["params"]) if leaf.ndim == 4 and "aux" not in jax.tree_util.keystr(path)}
    assert set(re.findall(r"stablehlo\.convolution\(.*?: \(tensor<[^>]*>, tensor<([^>]*)>\)", loaded.mlir_module())) == kernels
    assert set(export.PLATFORMS) <= set(loaded.platforms)
    sidecar = json.loads(artifact.with_name(artifact.name + ".json").read_text())
    assert sidecar["format"] == "stablehlo" and sidecar["class_names"] == CLASSES
    assert sidecar["model"] == model.config.model and sidecar["checkpoint"] == "latest (step 0)"
    assert sidecar["input"]["shape"] == ["batch", 16, 16, 1] and sidecar["input"]["dtype"] == "uint8"
    assert sidecar["input"]["normalisation"].startswith("x / 127.5 - 1")


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                    reason="TFLite conversion needs TensorFlow: pip install 'ferjax[export]'")
def test_tflite_runs_with_litert_and_matches_the_trained_model(exported, tmp_path):
    interpreter = pytest.importorskip("ai_edge_litert.interpreter", reason="running TFLite needs ai-edge-litert")
    model, images, _ = exported
    out = tmp_path / "model.tflite"
    result = run_cli(f"--workdir={model.workdir}", "--format=tflite", f"--out={out}")  # TensorFlow stays out of pytest
    assert result.returncode == 0, result.stderr
    runner = interpreter.Interpreter(model_path=str(out)).get_signature_runner()
    got = np.concatenate([runner(images=image[None])["probabilities"] for image in images])
    np.testing.assert_allclose(got, model.probabilities(images), atol=1e-3, rtol=0)
    assert json.loads(out.with_name("model.tflite.json").read_text())["input"]["shape"] == [1, 16, 16, 1]


def test_tflite_without_tensorflow_is_a_one_line_hint_and_writes_nothing(tmp_path, monkeypatch):
    workdir = build_run(tmp_path / "run")
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if the export extra were not installed
    with pytest.raises(MissingExtra, match=r"pip install 'ferjax\[export\]'"):
        export.export_run(workdir, "tflite", tmp_path / "out" / "model.tflite")
    assert not (tmp_path / "out").exists()


def test_bad_requests_are_one_line_errors(tmp_path):
    with pytest.raises(RunError, match="not a ferjax run"):
        export.export_run(tmp_path, "stablehlo", tmp_path / "x")
    with pytest.raises(ConfigError, match="onnx"):
        export.export_run(tmp_path, "onnx", tmp_path / "x")
    for args, status in ((["--format=stablehlo"], 1), (["--format=onnx"], 2)):
        result = run_cli(f"--workdir={tmp_path}", f"--out={tmp_path / 'x'}", *args)
        lines = [line for line in result.stderr.splitlines() if line.startswith("ferjax: error:")]
        assert result.returncode == status and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ferjax.export", *args], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=300)
