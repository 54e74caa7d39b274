"""Test setup: 8 simulated CPU devices (SPEC §2), set before any JAX computation."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
