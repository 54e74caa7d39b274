"""The thesis' model table, recomputed (issue 5 item 4; SPEC §6; seed 001 "Model Evaluation").

    python -m ferjax.models.table          # text table, side by side with the thesis
    python -m ferjax.models.table --json   # JSON list: model, params, gmacs_32, params_224, depth, ...

Per model: parameters at the thesis' setting (32×32×3, 10 classes), parameters at ImageNet
(224×224×3, 1,000 classes) where that is meaningful, GMACs per image at 32×32×3 / 10 classes,
fp32 size in MiB at both settings (the thesis' MB column is the ImageNet one), and
weight-layer depth; for
``emosynthnet_author`` (which builds only at 64–100 px) the figures at 100×100×1 / 7 classes.
Every model is backbone + linear classifier layer; counting rules in
:mod:`ferjax.models.profile` (all variables incl. BatchNorm statistics; MACs of conv/dense
layers; nothing is allocated).
"""

from __future__ import annotations

import argparse
import json
from typing import Optional

from ferjax.models import profile

# Thesis table (seed 001): parameters (M), "FLOPS (Billion)" (= GMACs at 32×32×3), MB, depth.
THESIS = {
    "mobilenet_v2": (4, 0.006, 14, 105),
    "efficientnet_b0": (5, 0.008, 29, 132),
    "resnet50": (26, 0.078, 98, 107),
    "vgg19": (144, 0.417, 549, 19),
    "densenet121": (8, 0.057, 33, 242),
    "emosynthnet": (21, 1.120, 82, 34),
}

# Row name -> (registered model, hyperparameter overrides, ImageNet figure meaningful?).
ROWS = {
    "emosynthnet": ("emosynthnet", {}, True),
    "emosynthnet_author": ("emosynthnet", {"variant": "author"}, False),
    "camnet": ("camnet", {}, True),
    "baseline_cnn": ("baseline_cnn", {}, False),
    "resnet18": ("resnet18", {}, True),
    "resnet34": ("resnet34", {}, True),
    "se_resnet34": ("se_resnet34", {}, True),
    "resnet50": ("resnet50", {}, True),
    "vgg19": ("vgg19", {}, True),
    "densenet121": ("densenet121", {}, True),
    "mobilenet_v2": ("mobilenet_v2", {}, True),
    "efficientnet_b0": ("efficientnet_b0", {}, True),
}


def _figures(name: str, hparams: dict, shape: tuple[int, ...], num_classes: int, aux: bool = False):
    model = profile.build_classifier(profile.model_config(name, aux_loss_weight=0.3 if aux else 0.0, **hparams), num_classes)
    variables = profile.abstract_variables(model, shape)
    return profile.count_variables(variables), profile.inference_cost(model, variables, shape)


def row(label: str) -> dict:
    """One table row as a JSON-ready dict."""
    name, hparams, imagenet = ROWS[label]
    out: dict[str, Optional[float]] = {"model": label}
    if hparams.get("variant") == "author":
        params_100, cost = _figures(name, hparams, (1, 100, 100, 1), 7)
        out.update(params=None, gmacs_32=None, params_224=None, depth=cost.depth, mb=None, mb_224=None)
        out.update(params_100=params_100, gmacs_100=round(cost.macs / 1e9, 4), mb_100=round(4 * params_100 / 2**20, 1))
        return out
    params, cost = _figures(name, hparams, (1, 32, 32, 3), 10)
    out.update(params=params, gmacs_32=round(cost.macs / 1e9, 4), depth=cost.depth, mb=round(4 * params / 2**20, 1))
    out["params_224"] = _figures(name, hparams, (1, 224, 224, 3), 1000)[0] if imagenet else None
    out["mb_224"] = None if out["params_224"] is None else round(4 * out["params_224"] / 2**20, 1)
    if name == "emosynthnet":
        out["aux_params"] = _figures(name, hparams, (1, 32, 32, 3), 10, aux=True)[0] - params
    if label in THESIS:
        p, g, mb, d = THESIS[label]
        out["thesis"] = {"params_m": p, "gflops": g, "mb": mb, "depth": d}
    return out


def _fmt(value, scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}{unit}"


def format_table(rows: list[dict]) -> str:
    header = (
        f"{'model':<20}{'params@32/10':>14}{'params@224/1k':>15}{'GMACs@32':>10}{'MiB@32':>8}{'MiB@224':>9}{'depth':>7}"
        f"   thesis: {'params':>6}{'GFLOPs':>8}{'MB':>6}{'depth':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        t = r.get("thesis")
        thesis = f"{t['params_m']:>6}M{t['gflops']:>8.3f}{t['mb']:>6}{t['depth']:>7}" if t else ""
        lines.append(
            f"{r['model']:<20}{_fmt(r['params'], 1e6, unit='M'):>14}{_fmt(r['params_224'], 1e6, unit='M'):>15}"
            f"{_fmt(r['gmacs_32'], digits=4):>10}{_fmt(r['mb'], digits=1):>8}{_fmt(r['mb_224'], digits=1):>9}"
            f"{r['depth']:>7}           {thesis}"
        )
        if "params_100" in r:
            lines.append(
                f"{'':<20}at 100×100×1 / 7 classes: {r['params_100']:,} parameters, "
                f"{r['gmacs_100']:.3f} GMACs, {r['mb_100']} MiB"
            )
        if "aux_params" in r:
            lines.append(f"{'':<20}+ {r['aux_params']:,} parameters in the training-only auxiliary classifier")
    lines.append(
        "params: all variables incl. BatchNorm statistics (Keras 'Total params'); GMACs: multiply-"
        "accumulates of conv/transposed-conv/dense layers (the thesis' GFLOPs = TF-profiler FLOPs / 2);"
        " depth: weight layers incl. the classifier (the thesis' zoo depths are Keras' layer counts)."
    )
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a text table")
    parser.add_argument("models", nargs="*", default=list(ROWS), help="rows to compute (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models) - set(ROWS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; rows: {', '.join(ROWS)}")
    rows = [row(label) for label in args.models]
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))


if __name__ == "__main__":
    main()
