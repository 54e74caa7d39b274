"""oneDNN for bfloat16 on CPUs with bf16 units (ferjax.xla_options): when it applies, what it changes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ferjax import xla_options
from ferjax.models import conv
from ferjax.models.classifier import build_model
from tests.test_train import toy_config


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\nbugs\t\t: spectre_v1\n")
    assert {"amx_bf16", "avx512f", "fpu"} <= xla_options.cpu_flags(info) and "spectre_v1" not in xla_options.cpu_flags(info)
    assert xla_options.cpu_flags(tmp_path / "absent") == set()


@pytest.mark.parametrize(
    "flags, has_units",
    [("avx512f amx_bf16 amx_tile", True), ("avx512f avx512_bf16", True), ("avx512f avx512_vnni", False), ("", False)],
)
def test_bf16_units_are_amx_or_avx512_bf16(tmp_path, flags, has_units):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")
    assert xla_options.cpu_has_bf16_units(info) is has_units


@pytest.mark.parametrize("units", [True, False])
def test_onednn_only_for_bfloat16_on_bf16_units(monkeypatch, units):
    monkeypatch.setattr(xla_options, "cpu_has_bf16_units", lambda: units)
    assert xla_options.compiler_options(toy_config(dtype="float32")) == {}
    expected = {xla_options.ONEDNN: True} if units else {}
    assert xla_options.compiler_options(toy_config(dtype="bfloat16")) == expected
    lhs, kernel = jnp.zeros((2, 6, 6, 8), jnp.bfloat16), jnp.zeros((3, 3, 8, 8), jnp.bfloat16)
    assert conv._prefers_im2col(lhs, kernel, None) is (not units)  # a 6×6 map: im2col unless oneDNN runs it
    assert conv._prefers_im2col(lhs.astype(jnp.float32), kernel, None)  # float32 keeps the im2col rule


def test_onednn_bfloat16_model_computes_the_same_function():
    """The same bf16 forward pass compiled with and without oneDNN: equal to bf16 precision."""
    config = toy_config(dtype="bfloat16")
    model, _ = build_model(config, num_classes=7)
    images = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 1)).astype(np.float32)
    with conv.forced("xla"):
        variables = model.init(jax.random.key(0), images, train=False)

        def logits(v, x):
            return model.apply(v, x, train=False).head.logits.astype(jnp.float32)

        plain = jax.jit(logits)(variables, images)
        with_onednn = jax.jit(logits, compiler_options={xla_options.ONEDNN: True})
        onednn = with_onednn(variables, images)
        if xla_options.cpu_has_bf16_units():  # where ferjax turns it on, the convolutions must go to oneDNN
            assert "__onednn$convolution" in with_onednn.lower(variables, images).compile().as_text()
    assert float(jnp.max(jnp.abs(plain))) > 0.1
    np.testing.assert_allclose(onednn, plain, atol=0.05 * float(jnp.max(jnp.abs(plain))))
