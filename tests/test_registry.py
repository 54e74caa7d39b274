"""Registries own their components' defaults (issue 10): register with defaults, aliases, errors."""

import subprocess
import sys

import pytest

from ferjax import data, losses, models, optim
from ferjax.config import get_config
from ferjax.errors import ConfigError
from ferjax.registry import Registry


def test_register_declares_defaults_once_and_aliases_share_them():
    registry = Registry("loss")
    factory = registry.register("amsoftmax", lambda config: "am", aliases=("cosface",), s=30.0, m=0.35)

    @registry.register("focal", gamma=2.0)
    def _focal(config):
        return "focal"

    assert registry.get("cosface") is registry.get("amsoftmax") is factory
    assert registry.get("focal")(None) == "focal"
    assert registry.names() == ["amsoftmax", "cosface", "focal"]
    assert registry.default_config().to_dict() == {"amsoftmax": {"s": 30.0, "m": 0.35}, "focal": {"gamma": 2.0}}
    with pytest.raises(ValueError, match="twice"):
        registry.register("cosface", factory)


@pytest.mark.parametrize("kind, plural", [("loss", "losses"), ("model", "models"), ("dataset", "datasets")])
def test_unknown_name_is_one_line_with_a_proper_plural(kind, plural):
    registry = Registry(kind)
    registry.register("a", object)
    with pytest.raises(ConfigError, match=f"^unknown {kind} 'b'; valid {plural}: a$"):
        registry.get("b")


def test_config_groups_are_the_registries_defaults():
    config = get_config()
    assert config.losses.to_dict() == losses.LOSSES.default_config().to_dict()
    assert config.models.to_dict() == models.MODELS.default_config().to_dict()
    assert config.optimizers.to_dict() == optim.OPTIMIZERS.default_config().to_dict()
    assert config.datasets.to_dict() == data.DATASETS.default_config().to_dict()
    # A loss's group is its function's keyword defaults; aliases have no group of their own.
    assert config.losses.amsoftmax.to_dict() == {"s": 30.0, "m": 0.35}
    assert "cosface" not in config.losses and "cosface" in losses.LOSSES


def test_importing_ferjax_data_registers_every_dataset():
    code = "import ferjax.data as d; print(' '.join(d.DATASETS.names()))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["cifar10", "ckplus", "demo", "fer2013", "rafdb"]
