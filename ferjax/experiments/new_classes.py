"""Seed 002's experiment: new expression classes from a few examples, without retraining.

    python -m ferjax.experiments.new_classes --config=configs/ckplus.py --workdir=runs/new_classes
        [--held_out=anger,contempt,…] [--shots=1,5,10,20] [--draws=5] [--threshold=0.6] [--seed=0]
        [--seeds=0,1,2]

For each held-out class h (default: every class of the dataset, in turn), and each training seed
(``--seeds``; default: the config's seed):

1. train a cosine-head run (``config.loss``; LMCL unless the config names another cosine-head
   loss) with ``config.exclude_classes = h``, in ``<workdir>/without_<h>[/seed<s>]`` through
   :func:`ferjax.experiments.sweep.sweep` (a finished run is reused, an interrupted one resumes);
2. embed the *test* split (for CK+: the held-out subjects of the config's fold, every class) and
   the *training* split's images of h (training subjects only);
3. for n in ``--shots`` and ``--draws`` seeded draws of n training images of h, enroll h
   (:func:`ferjax.enrollment.centre`) and score the test split over the C−1 trained centres plus
   h's centre (closed set: arg-max cosine), and at the open-set threshold;
4. the baseline on the same images: a linear probe (multinomial logistic regression, balanced
   class weights) on the normalised embeddings of the whole training split of the C−1 classes
   plus the n examples of h.

Reported per held-out class, training seed and n (mean ± std over draws), and averaged over the
held-out classes (each class's mean over its seeds × draws); with several training seeds also per
seed, as mean ± std and minimum over the seeds of the class-averaged figures:
accuracy on the trained classes' test images before and after enrollment; accuracy on h's test
images; and at the threshold, the share of trained-class test images accepted (best cosine ≥ t)
and, before h is enrolled, the share of h's test images rejected (a class never enrolled). The
curve over thresholds is drawn too. Nothing is tuned on the test split: the threshold is fixed
(0.6 as in seed 002, or ``--threshold``). Writes ``results.json``, ``results.md`` and
``new_classes.png`` to ``--workdir``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from absl import flags

from ferjax import cli, enrollment, losses, run
from ferjax.errors import ConfigError, RunError
from ferjax.experiments import sweep

FLAGS = flags.FLAGS
THRESHOLDS = np.round(np.linspace(-0.2, 1.0, 61), 4)


def define_flags() -> None:
    from ferjax import main  # noqa: F401  (--config, --workdir)

    flags.DEFINE_list("held_out", None, "Classes to hold out, one run each (default: every class in turn).")
    flags.DEFINE_list("shots", ["1", "5", "10", "20"], "Numbers of enrollment images n.")
    flags.DEFINE_integer("draws", 5, "Random draws of the n images per n.")
    flags.DEFINE_float("threshold", enrollment.DEFAULT_THRESHOLD, "Open-set threshold on the best cosine.")
    flags.DEFINE_integer("seed", 0, "Seed of the draws (training uses --seeds, else config.seed).")
    sweep.define_seeds_flag()


def embed(trained: run.TrainedModel, source: Any) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings (N, D) of a split, in order, and its labels (N,)."""
    from ferjax.data import pipeline

    parts, labels = [], []
    for batch in pipeline.eval_batches(source, trained.config):
        mask = batch["mask"]
        parts.append(trained.embeddings(batch["image"][mask]))
        labels.append(batch["label"][mask])
    return enrollment.unit(np.concatenate(parts)), np.concatenate(labels).astype(np.int64)


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=seed).fit(train_x, train_y)


def held_out_study(trained: run.TrainedModel, full_splits, held_out: str, shots: Sequence[int], draws: int,
                   threshold: float, seed: int) -> dict:
    """Every figure of one held-out class (see the module docstring)."""
    names = list(full_splits.class_names)
    h = names.index(held_out)
    known = [i for i in range(len(names)) if i != h]  # the run's classes, in its order
    if [names[i] for i in known] != trained.base_class_names:
        raise RunError(f"{trained.workdir} was trained on {trained.base_class_names}, not {names} without {held_out!r}")
    centres, _ = enrollment.cosine_head(trained.config, trained.variables["params"], trained.workdir)
    test_x, test_y = embed(trained, full_splits.test)
    train_x, train_y = embed(trained, full_splits.train)
    pool = np.flatnonzero(train_y == h)
    to_run = np.full(len(names), -1)
    to_run[known] = np.arange(len(known))
    is_new = test_y == h
    known_y = to_run[test_y[~is_new]]  # test labels of the trained classes, in the run's numbering

    before = test_x @ centres.T
    result = {
        "held_out": held_out, "test_images": int(len(test_y)), "test_images_held_out": int(is_new.sum()),
        "train_images_held_out": int(len(pool)),
        "known_accuracy_before": float(np.mean(before[~is_new].argmax(1) == known_y)),
        "known_accepted_before": float(np.mean(before[~is_new].max(1) >= threshold)),
        "never_enrolled_rejected": float(np.mean(before[is_new].max(1) < threshold)),
        "curve": {"threshold": THRESHOLDS.tolist(),
                  "known_accepted": [float(np.mean(before[~is_new].max(1) >= t)) for t in THRESHOLDS],
                  "never_enrolled_rejected": [float(np.mean(before[is_new].max(1) < t)) for t in THRESHOLDS]},
        "shots": {},
    }
    probe_x, probe_y = train_x[train_y != h], to_run[train_y[train_y != h]]
    new_label = len(known)
    for n in shots:
        if n > len(pool):
            result["shots"][str(n)] = {"skipped": f"only {len(pool)} training images of {held_out}"}
            continue
        per_draw = []
        for draw in range(draws):
            rng = np.random.default_rng([seed, h, n, draw])
            chosen = rng.choice(pool, n, replace=False)
            c = enrollment.centre(train_x[chosen])
            cos = np.concatenate([before, test_x @ c[:, None]], axis=1)
            predicted = cos.argmax(1)
            accepted = cos.max(1) >= threshold
            probe = linear_probe(np.concatenate([probe_x, train_x[chosen]]),
                                 np.concatenate([probe_y, np.full(n, new_label)]), seed).predict(test_x)
            per_draw.append({
                "known_accuracy_after": float(np.mean(predicted[~is_new] == known_y)),
                "new_accuracy": float(np.mean(predicted[is_new] == new_label)),
                "all_accuracy": float(np.mean(np.where(is_new, predicted == new_label, predicted == to_run[test_y]))),
                "known_accepted_after": float(np.mean(accepted[~is_new])),
                "new_accepted_correct": float(np.mean(accepted[is_new] & (predicted[is_new] == new_label))),
                "probe_known_accuracy": float(np.mean(probe[~is_new] == known_y)),
                "probe_new_accuracy": float(np.mean(probe[is_new] == new_label)),
            })
        result["shots"][str(n)] = {key: [d[key] for d in per_draw] for key in per_draw[0]}
    return result


def cosine_config(config):
    """``config`` with a cosine-head loss: its own if it has one, else LMCL (seed 002)."""
    config = config.copy_and_resolve_references()
    if losses.make_objective(config).head != "cosine":
        config.loss = "lmcl"
    return config


def run_study(config, workdir: str | Path, held_out: Sequence[str] | None = None, shots: Sequence[int] = (1, 5, 10, 20),
              draws: int = 5, threshold: float = enrollment.DEFAULT_THRESHOLD, seed: int = 0,
              seeds: Sequence[int] | None = None) -> dict:
    """Train (or reuse) one run per held-out class and training seed (``seeds``; None: the config's,
    in ``without_<h>`` itself) and write results.json/.md and the PNG. A diverged run is listed
    under ``"diverged"`` and left out of the figures."""
    from ferjax import train
    from ferjax.data import load_dataset

    workdir = Path(workdir)
    config = cosine_config(config)
    with config.unlocked():
        config.exclude_classes = ""
    full = load_dataset(config)
    held_out = list(held_out or full.class_names)
    for h in held_out:
        if h not in full.class_names:
            raise ConfigError(f"--held_out: {h!r} is not a class of {full.name} ({', '.join(full.class_names)})")
    studies, diverged = [], []
    for h in held_out:
        run_config = config.copy_and_resolve_references()
        run_config.exclude_classes = h
        print(f"[new_classes] {h}: training {config.model} + {config.loss} without it in {workdir / f'without_{h}'}", flush=True)
        for trial in sweep.sweep({f"without_{h}": run_config}, workdir, seeds=seeds, say=lambda line: None):
            tag = h if trial.seed is None else f"{h}, seed {trial.seed}"
            if trial.report is None:
                print(f"[new_classes] {tag}: diverged, left out: {trial.diverged}", flush=True)
                diverged.append({"held_out": h, "training_seed": trial.seed, "workdir": str(trial.workdir), "error": trial.diverged})
                continue
            study = held_out_study(run.load_run(trial.workdir), full, h, shots, draws, threshold, seed)
            study["training_seed"] = int(config.seed if trial.seed is None else trial.seed)
            study["run"] = {"workdir": str(trial.workdir), "wall_seconds": trial.report.get("wall_seconds"),
                            "test_accuracy_trained_classes": trial.accuracy("test")}
            studies.append(study)
            print(f"[new_classes] {tag}: " + ", ".join(
                f"n={n} new {100 * statistics.fmean(s['new_accuracy']):.1f}%" for n, s in study["shots"].items() if "new_accuracy" in s),
                flush=True)
    if not studies:
        raise RunError(f"every run of the study diverged (see {workdir})")
    results = {"protocol": protocol(config, full, shots, draws, threshold, seed, seeds), "held_out": studies, "diverged": diverged}
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (workdir / "results.md").write_text(markdown(results))
    figure(results, workdir / "new_classes.png")
    return results


def protocol(config, full, shots, draws, threshold, seed, seeds) -> dict:
    options = config.datasets.get(config.dataset)
    return {"dataset": full.name, "classes": list(full.class_names), "notes": list(full.notes),
            "fold": int(options.fold) if options is not None and "fold" in options else None,
            "model": config.model, "loss": config.loss, "epochs": int(config.num_epochs),
            "training_seeds": [int(s) for s in seeds] if seeds is not None else [int(config.seed)],
            "shots": list(shots), "draws": draws, "draw_seed": seed, "threshold": threshold,
            "baseline": "linear probe: logistic regression (balanced class weights, C=1) on the normalised embeddings "
                        "of the trained classes' whole training split plus the n enrollment images"}


def _ms(values: Sequence[float]) -> str:
    values = [100 * v for v in values]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.1f} ± {sd:.1f}"


def _pooled(studies: Sequence[dict], n: int) -> dict[str, list[float]] | None:
    """Each metric's values at n over the studies' draws (None when no study has n)."""
    have = [s["shots"][str(n)] for s in studies if "new_accuracy" in s["shots"].get(str(n), {})]
    return {k: [v for h in have for v in h[k]] for k in have[0]} if have else None


def _groups(results: dict, key: str) -> list[list[dict]]:
    """The studies grouped by ``key`` ("held_out" or "training_seed"), in first-seen order."""
    values = dict.fromkeys(s[key] for s in results["held_out"])
    return [[s for s in results["held_out"] if s[key] == v] for v in values]


def class_means(results: dict, key: str) -> list[float]:
    """A scalar figure (e.g. "known_accuracy_before") per held-out class, its mean over the seeds."""
    return [statistics.fmean(s[key] for s in group) for group in _groups(results, "held_out")]


def summary_rows(results: dict) -> list[tuple[int, dict]]:
    """Per n: each metric's per-class means over seeds × draws, one value per held-out class."""
    rows = []
    for n in results["protocol"]["shots"]:
        per_class = [p for p in (_pooled(group, n) for group in _groups(results, "held_out")) if p is not None]
        if per_class:
            rows.append((n, {k: [statistics.fmean(c[k]) for c in per_class] for k in per_class[0]}))
    return rows


def seed_rows(results: dict) -> list[tuple[int, dict]]:
    """Per n: each metric averaged over the held-out classes, one value per training seed."""
    rows = []
    for n in results["protocol"]["shots"]:
        per_seed = {}
        for group in _groups(results, "training_seed"):
            per_class = [p for p in (_pooled([s], n) for s in group) if p is not None]
            if per_class:
                per_seed[group[0]["training_seed"]] = {k: statistics.fmean(statistics.fmean(c[k]) for c in per_class)
                                                       for k in per_class[0]}
        if per_seed:
            keys = next(iter(per_seed.values()))
            rows.append((n, {k: [m[k] for m in per_seed.values()] for k in keys}))
    return rows


def _msm(values: Sequence[float]) -> str:
    return f"{_ms(values)} (min {100 * min(values):.1f})"


def markdown(results: dict) -> str:
    p = results["protocol"]
    lines = [f"# New classes from n examples (seed 002): {p['dataset']}, {p['model']} + {p['loss']}", "",
             f"Protocol: {'; '.join(p['notes'])}. One run per held-out class and training seed ({p['epochs']} epochs, "
             f"training seed(s) {', '.join(map(str, p['training_seeds']))}), trained without it; enrolled from n images of training subjects ({p['draws']} draws "
             f"per n, seed {p['draw_seed']}); scored on the test split (held-out subjects). Closed set = arg-max cosine "
             f"over the trained centres and the new one; open set at cosine threshold {p['threshold']}. Baseline: "
             f"{p['baseline']}. No TTA, no ensemble; nothing tuned on the test split.", "",
             "## Mean over the held-out classes (mean ± std over classes of each class's mean over seeds × draws)", "",
             "| n | trained classes acc before % | after (centre) % | new class acc (centre) % | "
             "new class acc (probe) % | trained classes acc (probe) % | trained accepted at t % | new accepted & right at t % |",
             "|---|---|---|---|---|---|---|---|"]
    before = class_means(results, "known_accuracy_before")
    for n, m in summary_rows(results):
        lines.append(f"| {n} | {_ms(before)} | {_ms(m['known_accuracy_after'])} | {_ms(m['new_accuracy'])} | "
                     f"{_ms(m['probe_new_accuracy'])} | {_ms(m['probe_known_accuracy'])} | {_ms(m['known_accepted_after'])} | "
                     f"{_ms(m['new_accepted_correct'])} |")
    rejected = class_means(results, "never_enrolled_rejected")
    accepted = class_means(results, "known_accepted_before")
    lines += ["", f"Open set before enrollment, at t = {p['threshold']}: trained-class test images accepted {_ms(accepted)} %; "
              f"test images of the never-enrolled class rejected {_ms(rejected)} % (mean ± std over held-out classes)."]
    if len(p["training_seeds"]) > 1:
        lines += ["", "## Across training seeds (mean ± std (min) over seeds of the figure averaged over the held-out classes)", "",
                  "| n | after (centre) % | new class acc (centre) % | new class acc (probe) % | seeds |", "|---|---|---|---|---|"]
        for n, m in seed_rows(results):
            lines.append(f"| {n} | {_msm(m['known_accuracy_after'])} | {_msm(m['new_accuracy'])} | "
                         f"{_msm(m['probe_new_accuracy'])} | {len(m['new_accuracy'])} |")
    for d in results.get("diverged", []):
        lines += ["", f"Diverged, left out: {d['held_out']} (training seed {d['training_seed']}): {d['error']}"]
    lines += ["", "## Per held-out class and training seed (mean ± std over draws)", "",
              "| held out | seed | run test acc % | n | before % | after % | new (centre) % | new (probe) % | rejected before enrolling % |",
              "|---|---|---|---|---|---|---|---|---|"]
    for s in results["held_out"]:
        run_acc = s["run"]["test_accuracy_trained_classes"]
        for n, m in s["shots"].items():
            if "new_accuracy" not in m:
                lines.append(f"| {s['held_out']} | {s['training_seed']} | | {n} | {m['skipped']} | | | | |")
                continue
            lines.append(f"| {s['held_out']} | {s['training_seed']} | {100 * run_acc:.1f} | {n} | {100 * s['known_accuracy_before']:.1f} | "
                         f"{_ms(m['known_accuracy_after'])} | {_ms(m['new_accuracy'])} | {_ms(m['probe_new_accuracy'])} | "
                         f"{100 * s['never_enrolled_rejected']:.1f} |")
    return "\n".join(lines) + "\n"


def figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary_rows(results)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    if rows:
        ns = [n for n, _ in rows]
        for key, label, style in (("new_accuracy", "new class, centre", "o-"), ("probe_new_accuracy", "new class, linear probe", "s--"),
                                  ("known_accuracy_after", "trained classes, centre", "o-"),
                                  ("probe_known_accuracy", "trained classes, probe", "s--")):
            means = [100 * statistics.fmean(m[key]) for _, m in rows]
            sds = [100 * (statistics.stdev(m[key]) if len(m[key]) > 1 else 0.0) for _, m in rows]
            axis = axes[0] if key.endswith("new_accuracy") else axes[1]
            axis.errorbar(ns, means, yerr=sds, fmt=style, capsize=3, label=label)
        before = 100 * statistics.fmean(class_means(results, "known_accuracy_before"))
        axes[1].axhline(before, color="grey", ls=":", label="trained classes, before enrolling")
        for axis, title in ((axes[0], "Accuracy on the held-out class"), (axes[1], "Accuracy on the trained classes")):
            axis.set(xscale="log", xticks=ns, xticklabels=[str(n) for n in ns], xlabel="enrollment images n",
                     ylabel="accuracy % (mean ± std over held-out classes)", title=title)
            axis.legend(fontsize=8)
    t = np.asarray(results["held_out"][0]["curve"]["threshold"])
    for key, label in (("known_accepted", "trained-class images accepted"), ("never_enrolled_rejected", "never-enrolled class rejected")):
        curve = np.mean([np.mean([s["curve"][key] for s in group], axis=0) for group in _groups(results, "held_out")], axis=0)
        axes[2].plot(t, 100 * curve, label=label)
    axes[2].axvline(results["protocol"]["threshold"], color="grey", ls=":", label=f"t = {results['protocol']['threshold']}")
    axes[2].set(xlabel="cosine threshold t", ylabel="% (mean over held-out classes)", title="Open set, before enrolling")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"{results['protocol']['dataset']}: {results['protocol']['model']} + {results['protocol']['loss']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv) -> None:
    cli.setup(argv)
    try:
        shots = [int(n) for n in FLAGS.shots]
    except ValueError:
        cli.fail(f"--shots must be integers, got {','.join(FLAGS.shots)}", 2)
    with cli.user_errors():
        run_study(FLAGS.config, FLAGS.workdir, FLAGS.held_out, shots, FLAGS.draws, FLAGS.threshold, FLAGS.seed,
                  sweep.seeds_from_flag())
    print((Path(FLAGS.workdir) / "results.md").read_text(), end="")


if __name__ == "__main__":
    define_flags()
    cli.run(main, required=("config",))
