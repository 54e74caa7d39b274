"""Deterministic speed gates (issue 12, item 4): what a train step costs, not how long it takes.

Timings on a shared 2-core machine swing by 2–4×, so they cannot gate small regressions. What
XLA says a step costs does not swing: for each main model, the trainer's own jitted train step
(``ferjax.train.make_train_step``, the trainer's shardings and donation; 48×48×1, batch 64,
7 classes, the config defaults: softmax CE, Adam, aux classifier 0.3) is lowered and compiled
once, and its ``compiled.cost_analysis()`` FLOPs and bytes accessed are checked against
``benchmarks/costs.json`` within ``TOLERANCE`` (2%). An extra matmul, a layer computed twice,
a lost fusion that copies a buffer, or a convolution routed differently moves them.

Also checked, from the same trace:
- the step's output state has exactly the input state's shapes, dtypes and weak types, so
  step 2 reuses step 1's executable (a changed aval would recompile every step);
- a real two-epoch demo run of ``train.train_and_evaluate`` compiles ``train_step`` once
  (counted from ``jax.log_compiles``), validation in between included;
- each model's parameter count and MACs per image at 48×48×1 / 7 classes
  (``ferjax.models.profile``, the model table's counter), exactly. The table's comparison with
  the thesis at 32×32×3 lives in ``tests/test_models_table.py``; this pins the figures at the
  training resolution, which that test does not.

The graph gated is the portable one: without XLA's oneDNN custom calls, which ferjax turns on for
bf16 on CPUs with bf16 units (:mod:`ferjax.xla_options`), since XLA's cost analysis counts no FLOPs
inside a custom call; the tests pretend the CPU has none, so every machine compiles the same graph.

FLOPs and bytes depend on the backend, and bytes on the jax/jaxlib release too (XLA's fusion
decisions); ``costs.json`` records both. Under another backend the cost comparison skips, saying
so; under another release only the FLOPs are compared (they moved 0.03% from jax 0.12.0.1 to
0.12.1, bytes up to 1.3%), so a jax upgrade does not switch the gate off. After an intended
change (a new model layer, a jax upgrade, a routing change), regenerate the file and commit it
with the change, saying why the figures moved:

    FERJAX_UPDATE_COSTS=1 pytest benchmarks/test_costs.py

(about a minute: compiling is the cost; nothing is timed, so the machine's load does not matter).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import jax
import jaxlib
import pytest

from benchmarks import trainstep
from ferjax import parallel, run, train, xla_options
from ferjax.config import get_config
from ferjax.models import profile

COSTS_FILE = Path(__file__).with_name("costs.json")
UPDATE = os.environ.get("FERJAX_UPDATE_COSTS", "") not in ("", "0")
TOLERANCE = 0.02
BATCH = 64
SIZE, CHANNELS, NUM_CLASSES = trainstep.SIZE, trainstep.CHANNELS, trainstep.NUM_CLASSES

# case -> (model, config overrides). Full-width EmoSynthNet compiles in ≈ 12 s, so no reduced width.
CASES = {
    "baseline_cnn": ("baseline_cnn", {}),
    "baseline_cnn_bf16": ("baseline_cnn", {"dtype": "bfloat16"}),
    "emosynthnet": ("emosynthnet", {}),
    "resnet18": ("resnet18", {}),
    "camnet": ("camnet", {}),
}

_measured: dict[str, dict] = {}


def _environment() -> dict:
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "backend": jax.default_backend()}


def _avals(tree) -> list[tuple]:
    return [(leaf.shape, leaf.dtype, getattr(leaf, "weak_type", False)) for leaf in jax.tree.leaves(tree)]


def _committed() -> dict:
    return json.loads(COSTS_FILE.read_text()) if COSTS_FILE.exists() else {}


@pytest.fixture(autouse=True)
def _portable_graph(monkeypatch):
    monkeypatch.setattr(xla_options, "cpu_has_bf16_units", lambda: False)


@pytest.fixture(scope="module")
def committed():
    recorded = _committed()
    yield recorded
    if UPDATE and _measured:
        cases = dict(recorded.get("cases", {})) | _measured
        document = {
            "about": "Per-train-step XLA costs and model figures gated by benchmarks/test_costs.py; "
                     "regenerate with FERJAX_UPDATE_COSTS=1 pytest benchmarks/test_costs.py",
            "environment": _environment(),
            "shape": {"batch": BATCH, "image": [SIZE, SIZE, CHANNELS], "num_classes": NUM_CLASSES},
            "cases": {name: cases[name] for name in sorted(cases)},
        }
        COSTS_FILE.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {COSTS_FILE} ({len(_measured)} case(s) measured now)")


@pytest.mark.parametrize("case", list(CASES))
def test_train_step_costs(case, committed):
    model_name, overrides = CASES[case]
    config = trainstep.config(model_name, BATCH, **overrides)
    model, tx, step = trainstep.jitted(config, parallel.make_mesh())
    state = jax.eval_shape(lambda: run.init_state(model, tx, config, seed=0))
    batch = trainstep.abstract_batch(BATCH)

    # Step 2 must reuse step 1's executable: the state comes back with the same avals.
    new_state, metrics = jax.eval_shape(step, state, batch)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    changed = [(a, b) for a, b in zip(_avals(state), _avals(new_state)) if a != b]
    assert not changed, f"{case}: the train step changes state avals (recompiles every step): {changed[:3]}"

    costs = step.lower(state, batch).compile().cost_analysis()
    costs = costs[0] if isinstance(costs, (list, tuple)) else costs
    shape = (1, SIZE, SIZE, CHANNELS)
    variables = profile.abstract_variables(model, shape)
    row = {
        "flops": float(costs["flops"]),
        "bytes_accessed": float(costs["bytes accessed"]),
        "params": profile.count_variables(variables),
        "macs_per_image": int(profile.inference_cost(model, variables, shape).macs),
    }
    _measured[case] = row
    print(f"\n{case}: " + ", ".join(f"{k} {v:,.0f}" for k, v in row.items()))
    if UPDATE:
        return
    expected = committed.get("cases", {}).get(case)
    assert expected is not None, f"{case} is not in {COSTS_FILE.name}: run FERJAX_UPDATE_COSTS=1 pytest {__file__}"
    assert (row["params"], row["macs_per_image"]) == (expected["params"], expected["macs_per_image"]), (
        f"{case}: params/MACs changed from {expected['params']:,}/{expected['macs_per_image']:,} "
        f"to {row['params']:,}/{row['macs_per_image']:,}"
    )
    recorded = committed.get("environment", {})
    if recorded.get("backend") != jax.default_backend():
        pytest.skip(f"XLA costs in {COSTS_FILE.name} were recorded on {recorded.get('backend')}, this is "
                    f"{jax.default_backend()}: regenerate with FERJAX_UPDATE_COSTS=1 (params/MACs did match)")
    keys = ("flops", "bytes_accessed") if recorded == _environment() else ("flops",)
    if len(keys) == 1:
        print(f"{case}: costs recorded under {recorded}, this is {_environment()}: FLOPs gated, bytes accessed "
              "not (XLA's fusion decisions vary between releases); regenerate with FERJAX_UPDATE_COSTS=1")
    for key in keys:
        ratio = row[key] / expected[key]
        assert abs(ratio - 1) <= TOLERANCE, (
            f"{case}: train-step {key} {row[key]:,.0f} is {ratio:.3f}× the committed {expected[key]:,.0f} "
            f"(tolerance ±{TOLERANCE:.0%}). If intended, regenerate {COSTS_FILE.name} with "
            "FERJAX_UPDATE_COSTS=1 and say why in the commit."
        )


class _CompileCounter(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.compiled: list[str] = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Compiling "):
            self.compiled.append(message.split(" with ", 1)[0].removeprefix("Compiling "))


def test_trainer_compiles_train_step_once(tmp_path):
    """Two epochs of a real demo run (validation after each) compile ``train_step`` once."""
    config = get_config()
    config.models.baseline_cnn.conv_features = (8, 16)
    config.models.baseline_cnn.dense_features = (32, 16)
    config.models.baseline_cnn.dropout_rates = (0.1, 0.1)
    config.datasets.demo.train_size, config.datasets.demo.validation_size, config.datasets.demo.test_size = 128, 64, 64
    config.batch_size, config.eval_batch_size, config.num_epochs = 32, 32, 2
    config.log_every_steps, config.progress_bar = 2, False
    counter = _CompileCounter()
    logger = logging.getLogger("jax")
    logger.addHandler(counter)
    try:
        with jax.log_compiles():
            train.train_and_evaluate(config, tmp_path / "run")
    finally:
        logger.removeHandler(counter)
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(e["step"] for e in events if e["split"] == "train") == 8  # 2 epochs × 4 steps ran
    assert sum(e["split"] == "validation" for e in events) >= 2
    steps = [name for name in counter.compiled if "train_step" in name]
    assert len(steps) == 1, f"train_step compiled {len(steps)} times in 8 steps: {counter.compiled}"
