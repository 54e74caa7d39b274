"""Analysis figures of trained runs: t-SNE, unit sphere, angles, loss landscape, Grad-CAM (issue 11).

    python -m ferjax.analyze --workdir=RUN [--workdir=RUN2 …] --figures=tsne,sphere,angles,landscape,gradcam
        [--split=test|validation] [--out=DIR] [--checkpoint=best|latest|STEP] [--examples=N] [--seed=S]
        [--landscape_resolution=R] [--landscape_line=L] [--landscape_examples=N] [--landscape_span=S]
        [--gradcam_images=N] [--gradcam_layer=MODULE_PATH] [--gradcam_class=NAME]

Each figure has one panel (or column) per run, so two runs (e.g. softmax against mam_softmax) sit
side by side; the runs must share their class set. ``tsne``, ``sphere`` and ``angles`` use up to
``--examples`` images of ``--split`` of each run's dataset; ``sphere`` needs runs trained with a
3-d embedding (``--config.embedding_dim=3``); ``landscape`` uses ``--landscape_examples`` images
of the training split; ``gradcam`` explains ``--gradcam_images`` images of the first run's split
(one class after another). What each figure shows: docs/analysis.md.

Writes ``tsne.png``, ``sphere.png``, ``angles.png``, ``landscape.png`` with ``landscape_<run>.npz``,
``gradcam.png`` and ``analysis.json`` (the numbers behind them) to ``--out``
(default: ``analysis/`` in the first run's workdir).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from ferjax import cli, run, train
from ferjax.analysis import embedding, gradcam, landscape, plots
from ferjax.data import DatasetSplits, load_dataset, preprocess
from ferjax.errors import ConfigError, RunError

FIGURES = ("tsne", "sphere", "angles", "landscape", "gradcam")

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("workdir", None, "A trained run's workdir (repeat to draw runs side by side).")
flags.DEFINE_list("figures", None, f"Figures to make: {', '.join(FIGURES)}.")
flags.DEFINE_enum("split", "test", ["test", "validation"], "Split for tsne, sphere, angles and gradcam.")
flags.DEFINE_string("out", None, "Output directory (default: RUN/analysis of the first run).")
flags.DEFINE_string("checkpoint", "best", "Checkpoint of each run: best, latest or a step number.")
flags.DEFINE_integer("examples", 2000, "Images of the split for tsne, sphere and angles (a seeded draw).")
flags.DEFINE_integer("seed", 0, "Seed of the image draws, the t-SNE and the landscape directions.")
flags.DEFINE_integer("landscape_resolution", 21, "Grid points per axis of the 2-D landscape (odd).")
flags.DEFINE_integer("landscape_line", 51, "Points of the 1-D landscape (odd).")
flags.DEFINE_integer("landscape_examples", 512, "Training images the landscape's loss is averaged over.")
flags.DEFINE_float("landscape_span", 1.0, "The landscape spans [-span, span] along each direction.")
flags.DEFINE_integer("gradcam_images", 8, "Images in the Grad-CAM grid.")
flags.DEFINE_string("gradcam_layer", None, "Module path of the Grad-CAM layer (default: the last spatial feature map).")
flags.DEFINE_string("gradcam_class", None, "Explain this class (default: each image's predicted class).")


@dataclasses.dataclass(frozen=True)
class Options:
    split: str = "test"
    examples: int = 2000
    seed: int = 0
    landscape_resolution: int = 21
    landscape_line: int = 51
    landscape_examples: int = 512
    landscape_span: float = 1.0
    gradcam_images: int = 8
    gradcam_layer: str | None = None
    gradcam_class: str | None = None


def analyze(workdirs: Sequence[str | Path], figures: Sequence[str], out: str | Path | None = None,
            options: Options = Options(), checkpoint: str = "best") -> dict:
    """Make ``figures`` for the runs in ``workdirs``; returns analysis.json's dict."""
    unknown = [f for f in figures if f not in FIGURES]
    if unknown or not figures:
        raise ConfigError(f"unknown figure {', '.join(unknown) or '(none given)'}; valid: {', '.join(FIGURES)}")
    _check_options(options, figures)
    runs = [run.load_run(w, checkpoint) for w in workdirs]
    for trained in runs[1:]:
        if trained.base_class_names != runs[0].base_class_names:
            raise RunError(f"{trained.workdir} has classes {trained.base_class_names}, {runs[0].workdir} has "
                           f"{runs[0].base_class_names}: runs drawn side by side need one class set")
    if "gradcam" in figures and options.gradcam_class not in (None, *runs[0].base_class_names):
        raise ConfigError(f"--gradcam_class={options.gradcam_class!r} is not a class of the runs: "
                          f"{', '.join(runs[0].base_class_names)}")
    if "sphere" in figures:
        for trained in runs:
            _require_3d(trained)
    cams = [gradcam.GradCAM(trained, options.gradcam_layer) for trained in runs] if "gradcam" in figures else []
    splits = [load_dataset(trained.config) for trained in runs]
    if {"tsne", "sphere", "angles", "gradcam"} & set(figures):
        for trained, data in zip(runs, splits):
            _split(data, options.split, trained)
    out = Path(out) if out is not None else runs[0].workdir / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    names = _names(runs)
    summary: dict = {"runs": [str(t.workdir) for t in runs],
                     "checkpoints": [t.weights for t in runs],
                     "split": options.split, "seed": options.seed, "figures": {}}
    if {"tsne", "sphere", "angles"} & set(figures):
        _embedding_figures(runs, splits, names, figures, options, out, summary)
    if "landscape" in figures:
        _landscape(runs, splits, names, options, out, summary)
    if "gradcam" in figures:
        _gradcam(runs, cams, splits[0], names, options, out, summary)
    (out / "analysis.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _check_options(options: Options, figures: Sequence[str]) -> None:
    for key in ("examples", "landscape_examples", "gradcam_images"):
        if getattr(options, key) < 1:
            raise ConfigError(f"--{key}={getattr(options, key)} must be at least 1")
    if "landscape" in figures:
        landscape.grid(options.landscape_resolution, options.landscape_span, "--landscape_resolution")
        landscape.grid(options.landscape_line, options.landscape_span, "--landscape_line")


def _require_3d(trained: run.TrainedModel) -> None:
    shape = (1, trained.image_size, trained.image_size, trained.channels)
    out = jax.eval_shape(lambda v, x: trained.model.apply(v, x, train=False), trained.variables,
                         jax.ShapeDtypeStruct(shape, jnp.float32))
    if out.embedding.shape[-1] != 3:
        raise RunError(f"{trained.workdir}: the sphere figure needs a 3-d embedding, this run's is "
                       f"{out.embedding.shape[-1]}-d; train one with --config.embedding_dim=3")


def _split(data: DatasetSplits, name: str, trained: run.TrainedModel):
    source = getattr(data, name)
    if source is None or len(source) == 0:
        raise RunError(f"dataset {data.name!r} of {trained.workdir} has no {name} split here "
                       f"({'; '.join(data.notes) or 'none'})")
    return source


def _names(runs: Sequence[run.TrainedModel]) -> list[str]:
    short = [t.workdir.name or str(t.workdir) for t in runs]
    return short if len(set(short)) == len(short) else [f"{i + 1}_{name}" for i, name in enumerate(short)]


def _title(name: str, trained: run.TrainedModel) -> str:
    return f"{name}: {trained.config.model}, {trained.config.loss}"


def _embedding_figures(runs, splits, names, figures, options: Options, out: Path, summary: dict) -> None:
    tsne_panels, sphere_panels, angle_panels = [], [], []
    for trained, data, name in zip(runs, splits, names):
        print(f"embedding {options.split} images with {trained.workdir} …", flush=True)
        images, labels, _ = embedding.sample(trained, _split(data, options.split, trained), options.examples, options.seed)
        vectors = trained.embeddings(images)
        centres, kind = embedding.class_centres(trained, vectors, labels)
        title = f"{_title(name, trained)} ({len(labels)} {options.split} images)"
        if "tsne" in figures:
            tsne_panels.append((title, embedding.tsne(vectors, options.seed), labels))
        if "sphere" in figures:
            sphere_panels.append((title, embedding.unit(vectors), labels, centres, kind))
        if "angles" in figures:
            target, other = embedding.angles(vectors, labels, centres)
            angle_panels.append((f"{title}\nangles to class centres ({kind})", target, other))
            summary.setdefault("angles", {})[name] = {
                "centres": kind, "target_mean_deg": float(np.mean(target)), "target_std_deg": float(np.std(target)),
                "non_target_mean_deg": float(np.mean(other)), "non_target_std_deg": float(np.std(other))}
    class_names = runs[0].base_class_names
    for figure, panels, draw in (("tsne", tsne_panels, lambda p, path: plots.tsne_figure(p, class_names, path)),
                                 ("sphere", sphere_panels, lambda p, path: plots.sphere_figure(p, class_names, path)),
                                 ("angles", angle_panels, plots.angles_figure)):
        if panels:
            draw(panels, out / f"{figure}.png")
            summary["figures"][figure] = f"{figure}.png"


def _landscape(runs, splits, names, options: Options, out: Path, summary: dict) -> None:
    panels = []
    for trained, data, name in zip(runs, splits, names):
        print(f"loss landscape of {trained.workdir} …", flush=True)
        images, labels, index = embedding.sample(trained, data.train, options.landscape_examples, options.seed)
        weights = train.class_weights_for(data.train, len(trained.base_class_names)) if trained.config.class_weighting else None
        land = landscape.loss_landscape(trained, preprocess.normalize(images), labels, weights,
                                        resolution=options.landscape_resolution, line_resolution=options.landscape_line,
                                        span=options.landscape_span, seed=options.seed)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
        np.savez(out / f"landscape_{slug}.npz", alphas=land.alphas, surface=land.surface, line_alphas=land.line_alphas,
                 line=land.line, train_indices=index[: land.examples], seed=options.seed)
        panels.append((_title(name, trained), land))
        middle = len(land.alphas) // 2
        summary.setdefault("landscape", {})[name] = {
            "file": f"landscape_{slug}.npz", "examples": land.examples, "span": options.landscape_span,
            "loss_at_trained_weights": float(land.surface[middle, middle]),
            "min": float(land.surface.min()), "max": float(land.surface.max())}
    plots.landscape_figure(panels, out / "landscape.png")
    summary["figures"]["landscape"] = "landscape.png"


def _gradcam(runs, cams, data: DatasetSplits, names, options: Options, out: Path, summary: dict) -> None:
    first = runs[0]
    source = _split(data, options.split, first)
    pool, labels, _ = embedding.sample(first, source, max(options.examples, options.gradcam_images), options.seed)
    chosen = _one_class_after_another(labels, options.gradcam_images)
    images, labels = pool[chosen], labels[chosen]
    target = None if options.gradcam_class is None else first.base_class_names.index(options.gradcam_class)
    columns = []
    for trained, cam, name in zip(runs, cams, names):
        print(f"Grad-CAM of {trained.workdir} …", flush=True)
        explanation = cam(images, target)
        columns.append((name, explanation, trained.base_class_names))
        summary.setdefault("gradcam", {})[name] = {"layer": explanation.layer, "class": options.gradcam_class or "predicted"}
    plots.gradcam_figure(images, [first.base_class_names[c] for c in labels], columns, out / "gradcam.png")
    summary["figures"]["gradcam"] = "gradcam.png"


def _one_class_after_another(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to ``n`` examples taking each class in turn (the first unused example of each)."""
    queues = [list(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    picked: list[int] = []
    while len(picked) < n and any(queues):
        picked += [q.pop(0) for q in queues if q][: n - len(picked)]
    return np.asarray(picked, np.int64)


def main(argv) -> None:
    cli.setup(argv)
    options = Options(split=FLAGS.split, examples=FLAGS.examples, seed=FLAGS.seed,
                      landscape_resolution=FLAGS.landscape_resolution, landscape_line=FLAGS.landscape_line,
                      landscape_examples=FLAGS.landscape_examples, landscape_span=FLAGS.landscape_span,
                      gradcam_images=FLAGS.gradcam_images, gradcam_layer=FLAGS.gradcam_layer,
                      gradcam_class=FLAGS.gradcam_class)
    with cli.user_errors():
        summary = analyze(FLAGS.workdir, FLAGS.figures, FLAGS.out, options, FLAGS.checkpoint)
    out = Path(FLAGS.out) if FLAGS.out else Path(FLAGS.workdir[0]) / "analysis"
    print(json.dumps({k: summary[k] for k in summary if k not in ("runs", "checkpoints")}, indent=2))
    print(f"Written: {', '.join(str(out / f) for f in summary['figures'].values())}, {out / 'analysis.json'}")


if __name__ == "__main__":
    cli.run(main, required=("workdir", "figures"))
