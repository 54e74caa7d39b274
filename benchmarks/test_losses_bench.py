"""Loss benchmarks (issue 3): forward+backward of head + loss on CPU.

1. Every registered loss (aliases once) against plain softmax CE on the *same* head, at
   (B=1024, D=512, C=7) and (B=256, D=512, C=1000); gradients w.r.t. head parameters and
   the embedding (as in training). Target: ratio ≤ 1.2.
2. ferjax against pytorch-metric-learning peers on CPU torch (skipped without the
   ``peers`` extra): ratio ferjax / peer, target < 1.

Ratios come from interleaved timing in the same test (rounds A B, B A, …): the median of
the per-round ratios, so load from other processes hits both sides alike; times shown are
each side's best round. pytest-benchmark also records the
ferjax step on its own. Tables print at the end of the module:

    pytest benchmarks/test_losses_bench.py --benchmark-columns=min,median
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import ferjax.losses as L
from ferjax.heads import HEADS

SHAPES = [(1024, 512, 7), (256, 512, 1000)]
ALIASES = {"cosface", "lmcl"}
NAMES = [n for n in L.LOSSES.names() if n not in ALIASES]
ROUNDS = 15
ROUND_SECONDS = 0.03

_results: dict[str, dict] = {"vs_ce": {}, "vs_peer": {}}


def _config(name: str) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"loss": name, "losses": L.LOSSES.default_config()})


def _data(b, d, c, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((b, d)).astype(np.float32), rng.integers(0, c, b).astype(np.int32)


def _ferjax_step(objective, num_classes, x, per_example=None):
    """jit(value_and_grad) of mean loss w.r.t. (head params, embedding); returns (fn, args)."""
    head = HEADS[objective.head](num_classes=num_classes, **objective.head_kwargs)
    params = head.init(jax.random.key(0), x[:1])
    per_example = per_example or objective.per_example

    def loss(params, x, y, step):
        return jnp.mean(per_example(head.apply(params, x), y, step))

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), params


def _plain_ce(out, y, step):
    del step
    return L.softmax_cross_entropy(out.logits, y)


def _seconds_per_call(call) -> float:
    start = time.perf_counter()
    call()
    single = time.perf_counter() - start
    number = max(1, int(ROUND_SECONDS / max(single, 1e-6)))
    start = time.perf_counter()
    for _ in range(number):
        call()
    return (time.perf_counter() - start) / number


def _interleaved(call_a, call_b) -> tuple[float, float, float]:
    """Time two callables in alternating rounds (A B B A …): best seconds per call of each,
    and the median of the per-round ratios A/B (robust to load drifting between rounds)."""
    call_a(), call_b()  # compile / warm up
    a, b = [], []
    for i in range(ROUNDS):
        first, second = (call_a, call_b) if i % 2 == 0 else (call_b, call_a)
        t_first, t_second = _seconds_per_call(first), _seconds_per_call(second)
        a.append(t_first if i % 2 == 0 else t_second)
        b.append(t_second if i % 2 == 0 else t_first)
    return min(a), min(b), float(np.median(np.asarray(a) / np.asarray(b)))


def _jax_call(fn, *args):
    return lambda: jax.block_until_ready(fn(*args))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-D{}-C{}".format(*s))
@pytest.mark.parametrize("name", NAMES)
def test_loss_vs_softmax_ce_same_head(benchmark, name, shape):
    b, d, c = shape
    x, y = _data(b, d, c)
    objective = L.make_objective(_config(name))
    loss_fn, params = _ferjax_step(objective, c, x)
    ce_fn, _ = _ferjax_step(objective, c, x, per_example=_plain_ce)
    step = jnp.asarray(10_000, jnp.int32)
    t_loss, t_ce, ratio = _interleaved(_jax_call(loss_fn, params, x, y, step), _jax_call(ce_fn, params, x, y, step))
    _results["vs_ce"][(name, shape)] = (objective.head, t_loss, t_ce, ratio)
    benchmark.extra_info.update(head=objective.head, ratio_to_ce=ratio)
    benchmark.pedantic(_jax_call(loss_fn, params, x, y, step), rounds=5, warmup_rounds=1)


# Peer (pytorch-metric-learning class) -> the ferjax loss computing the same objective.
PEERS = {
    "CosFaceLoss": "amsoftmax",
    "ArcFaceLoss": "arcface",
    "SphereFaceLoss": "asoftmax",
    "LargeMarginSoftmaxLoss": "lsoftmax",
    "NormalizedSoftmaxLoss": "normalised softmax (CE on the cosine head)",
}


def _torch_call(peer: str, x, y, c):
    torch = pytest.importorskip("torch")
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    torch.manual_seed(0)
    loss = getattr(pml, peer)(num_classes=c, embedding_size=x.shape[1])
    emb = torch.tensor(x, requires_grad=True)
    labels = torch.tensor(y, dtype=torch.long)

    def call():
        loss.zero_grad(set_to_none=True)
        emb.grad = None
        loss(emb, labels).backward()

    return call


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-D{}-C{}".format(*s))
@pytest.mark.parametrize("peer", list(PEERS))
def test_ferjax_vs_pytorch_metric_learning(benchmark, peer, shape):
    b, d, c = shape
    x, y = _data(b, d, c)
    peer_call = _torch_call(peer, x, y, c)
    target = PEERS[peer]
    if target in L.LOSSES:
        objective = L.make_objective(_config(target))
        fn, params = _ferjax_step(objective, c, x)
    else:
        objective = L.make_objective(_config("amsoftmax"))  # its cosine head, plain CE on s·cos θ
        fn, params = _ferjax_step(objective, c, x, per_example=_plain_ce)
    ours = _jax_call(fn, params, x, y, jnp.asarray(10_000, jnp.int32))
    t_ours, t_peer, ratio = _interleaved(ours, peer_call)
    _results["vs_peer"][(peer, shape)] = (target, t_ours, t_peer, ratio)
    benchmark.extra_info.update(ferjax=target, ratio_to_peer=ratio)
    benchmark.pedantic(peer_call, rounds=5, warmup_rounds=1)


def _shape_id(shape) -> str:
    return "B={}, C={}".format(shape[0], shape[2])


def _tables() -> list[str]:
    lines = []
    if _results["vs_ce"]:
        lines += ["", "ferjax loss vs plain softmax CE on the same head (forward+backward; best-round ms, median ratio):", ""]
        lines += ["| loss | head | " + " | ".join(f"{_shape_id(s)}: ms | ratio" for s in SHAPES) + " |"]
        lines += ["|---|---|" + "---|---|" * len(SHAPES)]
        for name in NAMES:
            row, head = [], "?"
            for shape in SHAPES:
                if (name, shape) in _results["vs_ce"]:
                    head, t_loss, t_ce, ratio = _results["vs_ce"][(name, shape)]
                    row.append(f"{1e3 * t_loss:.2f} (CE {1e3 * t_ce:.2f}) | {ratio:.2f}")
                else:
                    row.append("– | –")
            lines.append(f"| {name} | {head} | " + " | ".join(row) + " |")
    if _results["vs_peer"]:
        lines += ["", "ferjax vs pytorch-metric-learning on CPU torch (forward+backward; best-round ms, median ratio):", ""]
        lines += ["| peer | ferjax | " + " | ".join(f"{_shape_id(s)}: ferjax / peer ms | ratio" for s in SHAPES) + " |"]
        lines += ["|---|---|" + "---|---|" * len(SHAPES)]
        for peer, target in PEERS.items():
            row = []
            for shape in SHAPES:
                if (peer, shape) in _results["vs_peer"]:
                    _, t_ours, t_peer, ratio = _results["vs_peer"][(peer, shape)]
                    row.append(f"{1e3 * t_ours:.2f} / {1e3 * t_peer:.2f} | {ratio:.2f}")
                else:
                    row.append("– | –")
            lines.append(f"| {peer} | {target} | " + " | ".join(row) + " |")
    return lines


@pytest.fixture(scope="module", autouse=True)
def _print_tables(request):
    yield
    plugins = request.config.pluginmanager
    with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
        for line in _tables():
            plugins.get_plugin("terminalreporter").write_line(line)
