"""Export a trained run as one file that classifies without ferjax (issue 9, SPEC §10).

    python -m ferjax.export --workdir=RUN [--checkpoint=best|latest|STEP] --format=stablehlo|tflite --out=FILE

The exported function is the run's classifier in inference mode (``train=False``: dropout off,
BatchNorm running statistics, no auxiliary classifier), its weights embedded as constants,
traced with XLA's own convolutions (:func:`ferjax.models.conv.forced`, never the CPU im2col path):

- input ``images``: uint8 pixels ``(batch, S, S, C)``, already the run's size and channels
  (``TrainedModel.prepare`` makes them from any image); the function normalises them itself
  with :func:`ferjax.data.preprocess.normalize` as a 256-entry lookup table, so its inputs are
  bit for bit the pipeline's;
- outputs ``logits`` (the head's un-margined logits) and ``probabilities`` (their softmax),
  float32 ``(batch, classes)``, classes in the order of ``class_names``.

``stablehlo``: a serialized :mod:`jax.export` artifact with a symbolic batch dimension, lowered
for CPU, CUDA and TPU. A program that has jax (and neither ferjax nor flax) runs it:
``jax.export.deserialize(open(FILE, "rb").read()).call(images)`` returns ``{"logits", "probabilities"}``.

``tflite``: the same function through ``jax.experimental.jax2tf`` and the TFLite converter,
signature ``serving_default``; it runs with ``ai-edge-litert`` alone (no TensorFlow, no JAX).
Its batch is fixed to 1: a symbolic batch adds shape-assertion custom calls, which JAX 0.12
serialises as StableHLO 1.18 ops that TensorFlow 2.21's converter (StableHLO 1.13) cannot read.
Converting needs ``pip install 'ferjax[export]'``.

``FILE.json`` beside the artifact records the format, class names, input and output spec, the
run and checkpoint it came from and the ferjax version. Each file is written atomically.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

import ferjax
from ferjax import cli, files, run
from ferjax.data import preprocess
from ferjax.errors import ConfigError, MissingExtra
from ferjax.models import conv

FORMATS = ("stablehlo", "tflite")
PLATFORMS = ("cpu", "cuda", "tpu")  # what the StableHLO artifact is lowered for
EXTRA_HINT = "pip install 'ferjax[export]'"

FLAGS = flags.FLAGS


def serving_function(model: run.TrainedModel) -> Callable[[jax.Array], dict]:
    """uint8 ``(batch, S, S, C)`` → ``{"logits", "probabilities"}`` float32 ``(batch, classes)``."""
    variables = jax.tree.map(np.asarray, model.variables)
    table = preprocess.normalize(np.arange(256, dtype=np.uint8))

    def classify(images):
        out = model.model.apply(variables, jnp.asarray(table)[images], train=False)
        logits = out.head.logits.astype(jnp.float32)
        return {"logits": logits, "probabilities": jax.nn.softmax(logits, axis=-1)}

    return classify


def _input_spec(model: run.TrainedModel, batch: int | str) -> jax.ShapeDtypeStruct:
    shape = (batch, model.image_size, model.image_size, model.channels)
    if isinstance(batch, str):
        shape = jax.export.symbolic_shape(", ".join(map(str, shape)))
    return jax.ShapeDtypeStruct(shape, jnp.uint8)


def to_stablehlo(model: run.TrainedModel) -> bytes:
    """The serialized :class:`jax.export.Exported` of :func:`serving_function`, batch symbolic."""
    with conv.forced("xla"):
        exported = jax.export.export(jax.jit(serving_function(model)), platforms=PLATFORMS)(_input_spec(model, "batch"))
    return bytes(exported.serialize())


def to_tflite(model: run.TrainedModel) -> bytes:
    """A TFLite flatbuffer of :func:`serving_function` (batch 1), through jax2tf and a SavedModel."""
    try:
        import tensorflow as tf
        from jax.experimental import jax2tf
    except ImportError as error:
        raise MissingExtra(f"--format=tflite needs TensorFlow to convert ({error}): {EXTRA_HINT}") from None
    signature = tf.TensorSpec(_input_spec(model, 1).shape, tf.uint8, name="images")
    with conv.forced("xla"):
        function = tf.function(jax2tf.convert(serving_function(model), with_gradient=False), autograph=False,
                               input_signature=[signature])
        concrete = function.get_concrete_function()
    holder = tf.Module()
    holder.classify = function
    with tempfile.TemporaryDirectory() as saved:
        tf.saved_model.save(holder, saved, signatures={"serving_default": concrete})
        return tf.lite.TFLiteConverter.from_saved_model(saved).convert()


def describe(model: run.TrainedModel, fmt: str) -> dict:
    """The sidecar ``FILE.json``: what the artifact takes and returns, and where it came from."""
    return {
        "format": fmt,
        "ferjax_version": ferjax.__version__,
        "jax_version": jax.__version__,  # jax.export reads artifacts of jax versions up to ~6 months older
        "run": str(model.workdir),
        "checkpoint": model.weights,
        "dataset": model.record["dataset"],
        "model": model.config.model,
        "class_names": model.base_class_names,  # the trained classes: enrolled ones are not part of the graph
        "input": {
            "name": "images",
            "shape": ["batch" if fmt == "stablehlo" else 1, model.image_size, model.image_size, model.channels],
            "dtype": "uint8",
            "pixels": model.record["input"]["pixels"],
            "normalisation": f"{preprocess.NORMALISATION}, applied inside the exported function",
        },
        "outputs": {
            "logits": "float32 (batch, classes): the head's un-margined logits",
            "probabilities": "float32 (batch, classes): softmax of the logits",
        },
        "traced_with": "XLA convolutions, train=False (no dropout, BatchNorm running statistics, no auxiliary head)",
    }


def export_run(workdir: str | Path, fmt: str, out: str | Path, checkpoint: str | int = "best") -> Path:
    """Export ``workdir``'s ``checkpoint`` as ``fmt`` to ``out`` (and ``out.json``); returns ``out``."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out={out} is a directory; give the file to write")
    model = run.load_run(workdir, checkpoint)
    artifact = to_stablehlo(model) if fmt == "stablehlo" else to_tflite(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    files.write_atomically(out, artifact)
    files.write_atomically(out.with_name(out.name + ".json"), (json.dumps(describe(model, fmt), indent=2) + "\n").encode())
    return out


def main(argv) -> None:
    cli.setup(argv)
    with cli.user_errors():
        out = export_run(FLAGS.workdir, FLAGS.format, FLAGS.out, FLAGS.checkpoint)
    print(f"Written: {out} ({out.stat().st_size:,} bytes, {FLAGS.format}) and {out}.json")


def define_flags() -> None:
    """The command's flags, defined only when it runs (other commands define some of the same names)."""
    flags.DEFINE_string("workdir", None, "The trained run to export.")
    flags.DEFINE_string("checkpoint", "best", "Checkpoint: best, latest or a step number.")
    flags.DEFINE_enum("format", None, list(FORMATS), "stablehlo (jax.export) or tflite (LiteRT; needs ferjax[export]).")
    flags.DEFINE_string("out", None, "The file to write; FILE.json beside it describes it.")


if __name__ == "__main__":
    define_flags()
    cli.run(main, required=("workdir", "format", "out"))
