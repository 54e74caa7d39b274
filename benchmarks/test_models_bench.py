"""Model benchmarks (issue 5 item 5): images/s of every model at 48×48×1, batch 64.

1. Forward (``train=False``) and train step (softmax CE + the aux classifier's 0.3·CE + sown
   penalties, ``value_and_grad``, Adam update, state donated) per model, jitted on the default
   device; achieved model GFLOP/s (2 × conv/dense MACs per image from
   ``ferjax.models.profile``; a train step counted as 3× the forward) as a fraction of the
   matmul GFLOP/s measured in the same run (2048² float32 ``jnp.dot``).
2. On CPU, each model's train step with ``ferjax.models.conv``'s default routing (``auto``)
   against XLA's convolutions everywhere (``conv.forced("xla")``), interleaved rounds,
   batch 16: speed-up = XLA time / auto time.
3. EmoSynthNet (paper) train step against a PyTorch implementation of the same architecture
   (channels-last, same optimizer and losses), interleaved rounds in one test (A, B, A, B, …;
   best round each): ratio = PyTorch time / JAX time (target ≥ 1.0). Skipped without torch.

These are figures, not gates, and take over an hour for every model on 2 cores, so a plain
``pytest benchmarks`` skips them: select models with ``FERJAX_BENCH_MODELS=emosynthnet,resnet18``
or ``FERJAX_BENCH_MODELS=all`` (every registered model). The deterministic gates on the train
step's cost are in ``test_costs.py``.

    FERJAX_BENCH_MODELS=all pytest benchmarks/test_models_bench.py --benchmark-columns=min,median -s
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ferjax import models
from ferjax.models import conv, profile

BATCH = 64
SIZE = 48
CHANNELS = 1
NUM_CLASSES = 7
AUX_WEIGHT = 0.3
ROUNDS = 3
_CHOSEN = os.environ.get("FERJAX_BENCH_MODELS", "")
SELECTED = models.MODELS.names() if _CHOSEN == "all" else [m for m in _CHOSEN.split(",") if m]
pytestmark = pytest.mark.skipif(
    not SELECTED, reason="hour-long model figures: set FERJAX_BENCH_MODELS=all or a comma-separated list of models"
)

RESULTS: dict[str, dict] = {}


def _best_of(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@pytest.fixture(scope="module")
def matmul_gflops():
    a = jnp.ones((2048, 2048), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, a).block_until_ready()
    seconds = _best_of(lambda: dot(a, a).block_until_ready(), 5)
    yield 2 * 2048**3 / seconds / 1e9
    _print_results()


def _batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.uniform(-1, 1, (BATCH, SIZE, SIZE, CHANNELS)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, NUM_CLASSES, BATCH).astype(np.int32))
    return x, y


def _ce(logits, labels):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels))


def jax_train_step(model, tx):
    """The trainer's update (SPEC §6 objective: CE + aux CE + sown penalties), jitted and donated."""

    def step(state, x, y, key):
        params, batch_stats, opt_state = state

        def loss_fn(params):
            out, updates = model.apply(
                {"params": params, "batch_stats": batch_stats}, x, train=True,
                rngs={"dropout": key}, mutable=["batch_stats", "losses"],
            )
            loss = _ce(out.head.logits, y)
            if out.aux_logits is not None:
                loss += AUX_WEIGHT * _ce(out.aux_logits, y)
            loss += sum(jnp.sum(t) for t in jax.tree.leaves(updates.get("losses", {})))
            return loss, updates.get("batch_stats", batch_stats)

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), batch_stats, opt_state), loss

    return jax.jit(step, donate_argnums=0)


def _jax_setup(name: str):
    config = profile.model_config(name, aux_loss_weight=AUX_WEIGHT)
    model = profile.build_classifier(config, NUM_CLASSES)
    x, y = _batch()
    variables = jax.jit(lambda k: model.init(k, x[:1], train=False))(jax.random.key(0))
    tx = optax.adam(1e-3)
    state = (variables["params"], variables.get("batch_stats", {}), tx.init(variables["params"]))
    return model, variables, tx, state, x, y


def _model_gflop(name: str) -> float:
    """Forward GFLOP per image: 2 × conv/dense MACs (ferjax.models.profile)."""
    model = profile.build_classifier(profile.model_config(name), NUM_CLASSES)
    shape = (1, SIZE, SIZE, CHANNELS)
    return 2 * profile.inference_cost(model, profile.abstract_variables(model, shape), shape).macs / 1e9


@pytest.mark.parametrize("name", SELECTED)
def test_forward_and_train_step(benchmark, name, matmul_gflops):
    model, variables, tx, state, x, y = _jax_setup(name)
    forward = jax.jit(lambda v, x: model.apply(v, x, train=False).head.logits)
    inference_vars = {k: v for k, v in variables.items() if k in ("params", "batch_stats")}
    forward(inference_vars, x).block_until_ready()
    forward_s = _best_of(lambda: forward(inference_vars, x).block_until_ready(), ROUNDS)

    step = jax_train_step(model, tx)
    holder = {"state": state, "key": jax.random.key(1)}

    def one_step():
        holder["state"], loss = step(holder["state"], x, y, holder["key"])
        loss.block_until_ready()

    one_step()  # compile
    benchmark.pedantic(one_step, rounds=ROUNDS, iterations=1)
    train_s = benchmark.stats.stats.min
    gflop = _model_gflop(name)
    row = {
        "forward_img_s": BATCH / forward_s,
        "train_img_s": BATCH / train_s,
        "forward_util": BATCH * gflop / forward_s / matmul_gflops,
        "train_util": 3 * BATCH * gflop / train_s / matmul_gflops,
        "gflop_per_img": gflop,
        "matmul_gflops": matmul_gflops,
    }
    benchmark.extra_info.update(row)
    RESULTS[name] = row
    print(f"\n{name}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items()), flush=True)


@pytest.mark.parametrize("name", SELECTED)
def test_cpu_conv_routing_speedup(benchmark, name):
    if jax.default_backend() != "cpu":
        pytest.skip("the im2col routing only applies on the CPU backend")
    model, _, tx, state, x, y = _jax_setup(name)
    x, y = x[:16], y[:16]
    runs = {}
    for impl in ("xla", "auto"):
        step = jax_train_step(model, tx)
        with conv.forced(impl):  # decides the convolutions while the step is traced
            compiled = step.lower(state, x, y, jax.random.key(1)).compile()
        runs[impl] = {"step": compiled, "state": jax.tree.map(jnp.copy, state), "times": []}
    for _ in range(ROUNDS):
        for run in runs.values():
            start = time.perf_counter()
            run["state"], loss = run["step"](run["state"], x, y, jax.random.key(1))
            loss.block_until_ready()
            run["times"].append(time.perf_counter() - start)
    xla_s, auto_s = (min(runs[k]["times"]) for k in ("xla", "auto"))
    benchmark.extra_info.update(xla_s=xla_s, auto_s=auto_s, speedup=xla_s / auto_s)
    auto = runs["auto"]

    def auto_step():
        auto["state"], loss = auto["step"](auto["state"], x, y, jax.random.key(1))
        loss.block_until_ready()

    benchmark.pedantic(auto_step, rounds=1, iterations=1)  # the routed step, in pytest-benchmark's table
    print(f"\n{name}: train step batch 16, XLA convs {xla_s:.3f} s, auto {auto_s:.3f} s, speed-up {xla_s / auto_s:.2f}")


def _print_results() -> None:
    if not RESULTS:
        return
    matmul = next(iter(RESULTS.values()))["matmul_gflops"]
    print(f"\n\nModels at {SIZE}x{SIZE}x{CHANNELS}, batch {BATCH}, backend {jax.default_backend()}, "
          f"matmul {matmul:.0f} GFLOP/s")
    print("| model | GFLOP/img (fwd) | forward img/s | train img/s | forward GFLOP/s / matmul | train GFLOP/s / matmul |")
    print("|---|---|---|---|---|---|")
    for name, r in RESULTS.items():
        print(f"| {name} | {r['gflop_per_img']:.3f} | {r['forward_img_s']:.0f} | {r['train_img_s']:.1f} | "
              f"{r['forward_util']:.2f} | {r['train_util']:.2f} |")


# --- EmoSynthNet (paper) in PyTorch, the same architecture, for the train-step ratio -------------


def torch_emosynthnet(num_classes: int, channels: int):
    """PyTorch twin of ``EmoSynthNet(variant="paper")`` with its auxiliary classifier."""
    import torch
    from torch import nn as tnn
    from torch.nn import functional as F

    def unit(cin, cout, rate):
        return tnn.Sequential(
            tnn.Conv2d(cin, cout, 3, padding=1), tnn.ELU(), tnn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
            tnn.Dropout(rate),
        )

    class Side(tnn.Module):
        def __init__(self, cin):
            super().__init__()
            self.reduce3, self.reduce5 = tnn.Conv2d(cin, 128, 1), tnn.Conv2d(cin, 64, 1)
            self.c31, self.c32 = tnn.Conv2d(128, 192, 3, padding=1), tnn.Conv2d(128, 192, 3, padding=1)
            self.c51, self.c52 = tnn.Conv2d(64, 96, 5, padding=2), tnn.Conv2d(64, 96, 5, padding=2)
            self.proj = tnn.Conv2d(cin, 64, 1)

        def forward(self, x):
            r3, r5 = F.relu(self.reduce3(x)), F.relu(self.reduce5(x))
            pooled = F.max_pool2d(x, 3, 1, 1)
            outs = [self.c31(r3), self.c32(r3), self.c51(r5), self.c52(r5), self.proj(pooled)]
            return torch.cat([F.relu(o) for o in outs], 1)

        def l2(self):
            return 1e-3 * (self.c32.weight.square().sum() + self.c52.weight.square().sum())

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            c1 = 64 + channels
            self.b1 = tnn.ModuleList([unit(channels, 32, 0.25), tnn.Conv2d(32, 64, 1), unit(64, 64, 0.5), unit(64, 64, 0.25)])
            self.side1, self.side2 = Side(c1), Side(640)
            self.b2 = tnn.ModuleList([unit(c1, 128, 0.25), tnn.Conv2d(128, 128, 1), unit(128, 128, 0.5), unit(128, 128, 0.25)])
            self.b3 = tnn.ModuleList([unit(128, 256, 0.25), tnn.Conv2d(256, 256, 1), unit(256, 256, 0.5), unit(256, 256, 0.25)])
            self.b4 = tnn.ModuleList([unit(384, 512, 0.25), tnn.Conv2d(512, 512, 1), unit(512, 512, 0.25)])
            self.up1 = tnn.ConvTranspose2d(512, 512, 4, 2, 1)
            self.up2 = tnn.ConvTranspose2d(1152, 256, 3, 1, 1)
            self.dense = tnn.Sequential(
                tnn.Linear(7 * 7 * 256, 512), tnn.ELU(), tnn.BatchNorm1d(512, eps=1e-3, momentum=0.01), tnn.Dropout(0.4),
                tnn.Linear(512, 512), tnn.ELU(), tnn.BatchNorm1d(512, eps=1e-3, momentum=0.01), tnn.Dropout(0.2),
            )
            self.head = tnn.Linear(512, num_classes)
            self.aux_conv, self.aux_fc, self.aux_out = tnn.Conv2d(640, 128, 1), tnn.Linear(512, 512), tnn.Linear(512, num_classes)

        @staticmethod
        def pool(x):
            return F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)

        def forward(self, x):
            y = x
            for layer in self.b1:
                y = layer(y)
            x1 = torch.cat([self.pool(y), self.pool(x)], 1)
            side = self.side2(self.side1(x1))
            y = x1
            for layer in self.b2:
                y = layer(y)
            x2 = self.pool(y)
            y = x2
            for layer in self.b3:
                y = layer(y)
            y = torch.cat([self.pool(y), self.pool(x2)], 1)
            for layer in self.b4:
                y = layer(y)
            d = F.elu(self.up1(self.pool(y)))
            side = F.adaptive_avg_pool2d(side, d.shape[-2:])
            y = F.interpolate(torch.cat([side, d], 1), scale_factor=2, mode="nearest")
            y = F.interpolate(F.elu(self.up2(y)), scale_factor=2, mode="nearest")
            y = self.dense(torch.flatten(F.adaptive_avg_pool2d(y, 7), 1))
            a = F.relu(self.aux_conv(F.adaptive_avg_pool2d(side, 2)))
            a = self.aux_out(F.dropout(F.relu(self.aux_fc(torch.flatten(a, 1))), 0.7, self.training))
            return self.head(y), a, self.side1.l2() + self.side2.l2()

    return Net()


def test_emosynthnet_train_step_vs_pytorch(benchmark, matmul_gflops):
    torch = pytest.importorskip("torch", reason="the PyTorch comparison needs torch (the `torch` extra)")
    del matmul_gflops
    model, _, tx, state, x, y = _jax_setup("emosynthnet")
    step = jax_train_step(model, tx)
    holder = {"state": state, "key": jax.random.key(1)}

    def jax_step():
        holder["state"], loss = step(holder["state"], x, y, holder["key"])
        loss.block_until_ready()

    net = torch_emosynthnet(NUM_CLASSES, CHANNELS).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    tx_ = torch.from_numpy(np.asarray(x)).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    ty = torch.from_numpy(np.asarray(y)).long()

    def torch_step():
        opt.zero_grad(set_to_none=True)
        logits, aux, l2 = net(tx_)
        loss = torch.nn.functional.cross_entropy(logits, ty) + AUX_WEIGHT * torch.nn.functional.cross_entropy(aux, ty) + l2
        loss.backward()
        opt.step()

    jax_step(), torch_step()  # compile / warm up
    jax_times, torch_times = [], []
    for _ in range(ROUNDS):
        jax_times.append(_best_of(jax_step, 1))
        torch_times.append(_best_of(torch_step, 1))
    benchmark.pedantic(jax_step, rounds=1, iterations=1)
    ratio = min(torch_times) / min(jax_times)
    benchmark.extra_info.update(jax_s=min(jax_times), torch_s=min(torch_times), ratio_torch_over_jax=ratio)
    print(
        f"\nEmoSynthNet (paper) train step, {SIZE}x{SIZE}x{CHANNELS}, batch {BATCH}: JAX {min(jax_times):.2f} s, "
        f"PyTorch {torch.__version__} channels-last {min(torch_times):.2f} s ({torch.get_num_threads()} threads); "
        f"ratio PyTorch/JAX = {ratio:.2f} (target >= 1.0)"
    )
