"""Evaluate trained runs and their ensemble, with and without test-time augmentation (seed 003).

    python -m ferjax.evaluate --workdir=RUN [--workdir=RUN2 …] [--split=test|validation]
        [--tta=none|flip|crops|crops_flip|augment] [--tta_samples=N] [--weights=equal|validation|w1,w2,…]
        [--checkpoint=best|latest|STEP] --out=DIR

Each run is scored on the split of the dataset it was trained on, without TTA and with the
chosen TTA (:mod:`ferjax.data.tta`); the ensemble is the weighted mean of the members'
probabilities (seed 003 §6.2.2). ``--weights=validation`` fits the weights on the
*validation* split (minimum log-loss on the simplex), never on the reported split. Runs must
share the class set and the dataset (name and options). A ``crossval`` workdir (``fold<k>/``
runs) is evaluated fold by fold and summarised as mean ± sample std over the folds.
Writes ``evaluation.json``, ``evaluation.md`` and a confusion-matrix PNG per row to ``--out``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
from pathlib import Path
from typing import Sequence

import numpy as np
from absl import flags

from ferjax import cli, evaluation, run
from ferjax.data import load_dataset, tta
from ferjax.errors import ConfigError, RunError

FLAGS = flags.FLAGS


@dataclasses.dataclass
class Row:
    name: str  # a run's workdir, or "ensemble"
    tta: str
    metrics: dict
    scores: evaluation.Scores


def evaluate_runs(workdirs: Sequence[str | Path], split: str = "test", tta_mode: str = "flip", tta_samples: int = 8,
                  weights: str = "equal", checkpoint: str = "best") -> tuple[list[Row], dict]:
    """Rows for every member (no TTA, ``tta_mode``) and for the ensemble; and the protocol."""
    members = [run.load_run(w, checkpoint) for w in workdirs]
    _check_compatible(members)
    first = members[0]
    splits = load_dataset(first.config)
    source = getattr(splits, split)
    if source is None:
        raise RunError(f"dataset {splits.name!r} of {first.workdir} has no {split} split here ({'; '.join(splits.notes) or 'none'})")
    modes = ["none"] if tta_mode == "none" else ["none", tta_mode]
    rows: list[Row] = []
    for member in members:
        for mode in modes:
            print(f"scoring {member.workdir} on {split} (TTA {mode}) …", flush=True)
            scores = _score(member, source, mode, tta_samples)
            rows.append(Row(str(member.workdir), mode, evaluation.metrics(scores, first.class_names), scores))
    member_weights = _weights(weights, members, splits, tta_mode, tta_samples)
    if len(members) > 1:
        for mode in modes:
            scores = evaluation.ensemble([r.scores for r in rows if r.tta == mode], member_weights)
            rows.append(Row("ensemble", mode, evaluation.metrics(scores, first.class_names), scores))
    protocol = {
        "dataset": splits.name, "split": split, "examples": int(len(rows[0].scores.labels)),
        "class_names": first.class_names, "runs": [str(m.workdir) for m in members],
        "checkpoints": [m.weights for m in members], "tta": tta_mode,
        "tta_samples": tta_samples if tta_mode == "augment" else None, "weights_rule": weights,
        "weights": [round(float(w), 6) for w in member_weights], "notes": list(splits.notes),
    }
    return rows, protocol


def _score(member: run.TrainedModel, source, mode: str, samples: int) -> evaluation.Scores:
    views = tta.views(mode, member.config, samples, seed=int(member.config.seed))
    return evaluation.score_split(member.logits_of_batch, source, member.config, views)


def _check_compatible(members: Sequence[run.TrainedModel]) -> None:
    first = members[0]
    for member in members[1:]:
        if member.class_names != first.class_names:
            raise RunError(f"{member.workdir} has classes {member.class_names}, {first.workdir} has {first.class_names}: "
                           "an ensemble needs one class set")
        data_a, data_b = (run.config_dict(m.config) for m in (first, member))
        same = data_a["dataset"] == data_b["dataset"] and data_a["datasets"].get(data_a["dataset"]) == data_b["datasets"].get(data_b["dataset"])
        if not same:
            raise RunError(f"{member.workdir} was trained on other data than {first.workdir} "
                           f"(config.dataset / config.datasets.{data_b['dataset']} differ)")


def _weights(rule: str, members, splits, tta_mode: str, samples: int) -> np.ndarray:
    n = len(members)
    if rule == "equal":
        return np.full(n, 1.0 / n)
    if rule == "validation":
        if splits.validation is None:
            raise RunError(f"--weights=validation needs a validation split; dataset {splits.name!r} has none")
        print("fitting ensemble weights on the validation split …", flush=True)
        return evaluation.fit_weights([_score(m, splits.validation, tta_mode, samples) for m in members])
    try:
        values = np.asarray([float(w) for w in rule.split(",")])
    except ValueError:
        raise ConfigError(f"--weights={rule!r}: use equal, validation, or one number per run") from None
    if len(values) != n or np.any(values < 0) or values.sum() <= 0:
        raise ConfigError(f"--weights={rule!r}: need {n} non-negative numbers, not all zero")
    return values / values.sum()


# ---------------------------------------------------------------------------- reports


def short_names(paths: Sequence[str]) -> dict[str, str]:
    """Each path's shortest trailing part that no other path shares: ``fold0`` alone, but
    ``seed0/fold0`` and ``seed1/fold0`` for two seeds' runs (rows and file names stay distinct)."""
    parts = {p: Path(p).parts or (p,) for p in dict.fromkeys(paths)}
    for k in range(1, max((len(v) for v in parts.values()), default=0) + 1):
        names = {p: "/".join(v[-k:]) for p, v in parts.items()}
        if len(set(names.values())) == len(names):
            return names
    return {p: p for p in parts}


def _labels(rows: Sequence[Row]) -> dict[str, str]:
    """Each row's name in tables and file names: the ensemble, or its run's short name."""
    return short_names([r.name for r in rows if r.name != "ensemble"]) | {"ensemble": "ensemble"}


def markdown(rows: Sequence[Row], protocol: dict) -> str:
    names, labels = protocol["class_names"], _labels(rows)
    head = "| model | TTA | accuracy % | macro F1 | " + " | ".join(f"{n} recall %" for n in names) + " |"
    lines = [head, "|" + "---|" * (4 + len(names))]
    for r in rows:
        recalls = " | ".join(f"{100 * r.metrics['per_class_recall'][n]:.1f}" for n in names)
        lines.append(f"| {labels[r.name]} | {r.tta} | {100 * r.metrics['accuracy']:.2f} | {r.metrics['macro_f1']:.4f} | {recalls} |")
    return "\n".join(lines) + "\n\n" + protocol_text(protocol) + "\n"


def protocol_text(p: dict) -> str:
    tta_text = {"none": "no TTA", "flip": "TTA = the image and its horizontal mirror (2 views)",
                "crops": "TTA = 5 crops of the zero-padded image (corners and centre)",
                "crops_flip": "TTA = 5 crops of the zero-padded image (corners and centre) and their mirrors (10 views)",
                "augment": f"TTA = {p['tta_samples']} seeded draws of each run's training augmentation"}[p["tta"]]
    weights = ", ".join(f"{w:.3f}" for w in p["weights"])
    return (f"Protocol: {p['dataset']} {p['split']} split ({p['examples']} images, {len(p['class_names'])} classes: "
            f"{', '.join(p['class_names'])}); each run's {', '.join(p['checkpoints'])} checkpoint; "
            f"rows without and with TTA ({tta_text}); probabilities averaged over views; "
            f"ensemble of {len(p['runs'])} run(s) = weighted mean of member probabilities, weights {weights} "
            f"({p['weights_rule']}{', fitted on the validation split' if p['weights_rule'] == 'validation' else ''}). "
            + _selection_note(p))


def _selection_note(p: dict) -> str:
    """Say honestly whether anything was chosen on the reported split."""
    if p["split"] != "validation":
        return "Nothing was selected or tuned on this split."
    chosen = [c for c in p["checkpoints"] if c.startswith("best")]
    if chosen or p["weights_rule"] == "validation":
        return ("The 'best' checkpoints and/or the ensemble weights were selected on this validation split, "
                "so its figures are optimistic; use --checkpoint=latest for an unselected figure.")
    return "Nothing was selected or tuned on this split (latest/step checkpoints, weights not fitted)."


def write_outputs(out: Path, rows: Sequence[Row], protocol: dict, prefix: str = "") -> None:
    labels = _labels(rows)
    for r in rows:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{prefix}{labels[r.name]}_{r.tta}")
        title = f"{labels[r.name]} ({r.tta}): {protocol['split']} accuracy {r.metrics['accuracy']:.2%}"
        evaluation.write_split_outputs(r.metrics, r.scores, protocol["class_names"], out / f"confusion_{slug}.png", title)


def _rows_json(rows: Sequence[Row]) -> list[dict]:
    return [{"model": r.name, "tta": r.tta, **r.metrics} for r in rows]


def crossval_folds(workdir: Path) -> list[str]:
    """``fold<k>`` subdirectories holding runs, or [] when ``workdir`` is itself a run."""
    if (workdir / run.RUN_FILE).exists():
        return []
    return sorted((p.name for p in workdir.glob("fold*") if (p / run.RUN_FILE).exists()), key=lambda n: int(n[4:]))


def main(argv) -> None:
    cli.setup(argv)
    out = Path(FLAGS.out)
    workdirs = [Path(w) for w in FLAGS.workdir]
    kwargs = dict(split=FLAGS.split, tta_mode=FLAGS.tta, tta_samples=FLAGS.tta_samples, weights=FLAGS.weights,
                  checkpoint=FLAGS.checkpoint)
    with cli.user_errors():
        folds = [crossval_folds(w) for w in workdirs]
        out.mkdir(parents=True, exist_ok=True)
        if not any(folds):
            rows, protocol = evaluate_runs(workdirs, **kwargs)
            write_outputs(out, rows, protocol)
            (out / "evaluation.json").write_text(json.dumps({"protocol": protocol, "rows": _rows_json(rows)}, indent=2))
            text = markdown(rows, protocol)
        else:
            if any(f != folds[0] for f in folds) or not all(folds):
                raise RunError("crossval workdirs must all hold the same fold<k> runs (and plain runs can't mix with them)")
            text = _crossval(out, workdirs, folds[0], kwargs)
    (out / "evaluation.md").write_text(text)
    print(text, end="")
    print(f"Written: {out / 'evaluation.md'}, {out / 'evaluation.json'}")


def _crossval(out: Path, workdirs: list[Path], folds: list[str], kwargs: dict) -> str:
    per_fold, parts = {}, []
    for fold in folds:
        rows, protocol = evaluate_runs([w / fold for w in workdirs], **kwargs)
        write_outputs(out, rows, protocol, prefix=f"{fold}_")
        per_fold[fold] = {"protocol": protocol, "rows": _rows_json(rows)}
        parts.append(f"### {fold}\n\n{markdown(rows, protocol)}")
    summary = ["| model | TTA | accuracy % mean ± std (min) | macro F1 mean ± std |", "|---|---|---|---|"]
    first = per_fold[folds[0]]["rows"]
    runs = short_names([str(Path(r["model"]).parent) for r in first if r["model"] != "ensemble"])
    keys = [(runs[str(Path(r["model"]).parent)] if r["model"] != "ensemble" else "ensemble", r["tta"]) for r in first]
    for i, (name, mode) in enumerate(keys):
        acc = [per_fold[f]["rows"][i]["accuracy"] * 100 for f in folds]
        f1 = [per_fold[f]["rows"][i]["macro_f1"] for f in folds]
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
        summary.append(f"| {name} | {mode} | {statistics.fmean(acc):.2f} ± {sd(acc):.2f} ({min(acc):.2f}) | "
                       f"{statistics.fmean(f1):.4f} ± {sd(f1):.4f} |")
    (out / "evaluation.json").write_text(json.dumps({"folds": per_fold}, indent=2))
    head = f"## Cross-validation: {len(folds)} folds, mean ± sample std over folds\n\n" + "\n".join(summary)
    return head + "\n\n" + "\n".join(parts)


def define_flags() -> None:
    """The command's flags, defined only when it runs (other commands define some of the same names)."""
    flags.DEFINE_multi_string("workdir", None, "A run's workdir (repeat for an ensemble), or a crossval workdir.")
    flags.DEFINE_enum("split", "test", ["test", "validation"], "Split of the runs' dataset to evaluate.")
    flags.DEFINE_enum("tta", "flip", list(tta.MODES), "Test-time augmentation reported next to no TTA.")
    flags.DEFINE_integer("tta_samples", 8, "Draws of the training augmentation for --tta=augment.")
    flags.DEFINE_string("weights", "equal", "Ensemble weights: equal, validation (fitted on validation), or w1,w2,…")
    flags.DEFINE_string("checkpoint", "best", "Checkpoint of each run: best, latest or a step number.")
    flags.DEFINE_string("out", None, "Directory for evaluation.json, evaluation.md and confusion PNGs.")


if __name__ == "__main__":
    define_flags()
    cli.run(main, required=("workdir", "out"))
