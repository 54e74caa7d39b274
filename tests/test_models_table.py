"""The model table's deterministic figures (issue 5 acceptance; SPEC §6), allocation-free.

Parameters count every variable (BatchNorm statistics included, as Keras does); MACs are
conv/dense multiply-accumulates per image (ferjax.models.profile).
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from ferjax.models import profile, table

# model: (thesis GMACs at 32×32×3 / 10 classes, Keras ImageNet parameters in millions).
ZOO = {
    "mobilenet_v2": (0.006, 3.5),
    "efficientnet_b0": (0.008, 5.3),
    "resnet50": (0.078, 25.6),
    "vgg19": (0.417, 143.7),
    "densenet121": (0.057, 8.1),
}


def _figures(name, shape, num_classes, **hparams):
    model = profile.build_classifier(profile.model_config(name, **hparams), num_classes)
    variables = profile.abstract_variables(model, shape)
    return profile.count_variables(variables), profile.inference_cost(model, variables, shape)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_matches_thesis_gmacs_and_imagenet_params(name):
    gmacs, params_m = ZOO[name]
    _, cost = _figures(name, (1, 32, 32, 3), 10)
    assert cost.macs / 1e9 == pytest.approx(gmacs, rel=0.10)
    params, _ = _figures(name, (1, 224, 224, 3), 1000)
    assert params / 1e6 == pytest.approx(params_m, rel=0.03)


def test_emosynthnet_author_is_the_notebook_graph():
    params, cost = _figures("emosynthnet", (1, 100, 100, 1), 7, variant="author")
    assert params == 224_922_503
    assert cost.depth == 34
    assert cost.macs / 1e9 == pytest.approx(9.59, rel=0.01)  # SPEC §6's measurement


def test_emosynthnet_paper_matches_thesis_size_and_cost():
    params, cost = _figures("emosynthnet", (1, 32, 32, 3), 10)
    assert 18.9e6 <= params <= 23.1e6
    assert 0.95 <= cost.macs / 1e9 <= 1.29
    assert cost.depth == 34
    with_aux, _ = _figures("emosynthnet", (1, 32, 32, 3), 10, aux_loss_weight=0.3)
    assert params < with_aux <= 23.1e6  # the training-only auxiliary classifier fits the budget too


def test_emosynthnet_paper_parameters_do_not_depend_on_resolution():
    counts = {px: _figures("emosynthnet", (1, px, px, 1), 7)[0] for px in (32, 48, 100)}
    assert len(set(counts.values())) == 1, counts


def test_table_json_has_the_issue_keys():
    rows = json.loads(_run_table(["--json", "emosynthnet_author", "resnet18"]))
    assert [r["model"] for r in rows] == ["emosynthnet_author", "resnet18"]
    for r in rows:
        assert {"model", "params", "gmacs_32", "params_224", "depth"} <= set(r)
    assert rows[0]["params_100"] == 224_922_503


def _run_table(argv):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        table.main(argv)
    return buffer.getvalue()
