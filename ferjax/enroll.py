"""Add an expression class to a trained run from a few images, without training (seed 002 §3).

    python -m ferjax.enroll --workdir=RUN --class_name=NAME (--images=DIR | FILE…) [--n=10]
        [--no_detect] [--detector=mtcnn|haar] [--seed=0] [--threshold=0.6|calibrate:FAR]
    python -m ferjax.enroll --workdir=RUN --list
    python -m ferjax.enroll --workdir=RUN --remove=NAME
    python -m ferjax.enroll --workdir=RUN --threshold=calibrate:0.05

The images' faces are found as ``predict`` finds them (the best face of each image) unless
``--no_detect``; ``n`` of them (a draw by ``--seed`` when more are given) are embedded, and the
normalised mean of their normalised embeddings becomes the class's centre
(:mod:`ferjax.enrollment`). From then on ``load_run``, ``predict`` and ``evaluate`` score the
trained and the enrolled classes together and answer "unknown" when the best cosine is below
the threshold: 0.6 (seed 002), a given value, or ``calibrate:FAR``, the threshold at which a
share FAR of the validation split's known-class images would be accepted if their own class
were hidden (:func:`ferjax.enrollment.calibrate`). Needs a run trained with a cosine head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from absl import flags

from ferjax import cli, enrollment, run
from ferjax.data import load_dataset, pipeline
from ferjax.errors import ConfigError, DataError, RunError

FLAGS = flags.FLAGS


def enroll(trained: run.TrainedModel, class_name: str, inputs: Sequence[str | Path], n: int = 10, detect: bool = True,
           detector: str = "mtcnn", seed: int = 0) -> enrollment.Enrollment:
    """``trained``'s enrollment with ``class_name`` added from ``n`` of the images in ``inputs``
    (files or folders); not written (see :func:`ferjax.enrollment.write`)."""
    from ferjax.predict import IMAGE_SUFFIXES, Predictor, expand

    enrollment.cosine_head(trained.config, trained.variables["params"], trained.workdir)
    if n < 1:
        raise ConfigError(f"--n={n} must be at least 1")
    missing: list[dict] = []
    paths = list(expand(inputs, missing))
    if missing:
        raise DataError(missing[0]["error"])
    videos = [p for p in paths if p.suffix.lower() not in IMAGE_SUFFIXES]
    if videos:
        raise DataError(f"{videos[0]}: enroll takes still images, not videos or other files")
    if len(paths) < n:
        raise ConfigError(f"--n={n}: only {len(paths)} image(s) given for {class_name!r}; give at least {n} or lower --n")
    chosen = sorted(np.random.default_rng(seed).choice(len(paths), n, replace=False)) if len(paths) > n else range(n)
    paths = [paths[i] for i in chosen]
    predictor = Predictor(trained, detect=detect, detector=detector)
    problems: list[dict] = []
    crops = predictor.crops([str(p) for p in paths], problems)
    if problems:
        hint = " (use --no_detect for images that are already face crops)" if "no face" in problems[0]["error"] else ""
        raise DataError(problems[0]["error"] + hint)
    embeddings = trained.embeddings([crop for _, crop in crops])
    return enrollment.add(trained.enrollment, class_name, embeddings, [path for path, _ in crops], trained.base_class_names)


def validation_cosines(trained: run.TrainedModel) -> tuple[np.ndarray, np.ndarray]:
    """Cosines (N, C+k) of the validation split's images to every centre, and their labels (N,)."""
    splits = load_dataset(trained.config)
    if splits.validation is None or len(splits.validation) == 0:
        raise RunError(f"--threshold=calibrate needs a validation split; dataset {splits.name!r} of {trained.workdir} has none")
    centres, _ = enrollment.cosine_head(trained.config, trained.variables["params"], trained.workdir)
    if trained.enrollment is not None:
        centres = np.concatenate([centres, trained.enrollment.centres])
    cosines, labels = [], []
    for batch in pipeline.eval_batches(splits.validation, trained.config):
        mask = batch["mask"]
        cosines.append(enrollment.unit(trained.embeddings(batch["image"][mask])) @ centres.T)
        labels.append(batch["label"][mask])
    return np.concatenate(cosines), np.concatenate(labels).astype(np.int64)


def set_threshold(trained: run.TrainedModel, enrolled: enrollment.Enrollment, text: str) -> enrollment.Enrollment:
    kind, value = enrollment.parse_threshold(text)
    if kind == "value":
        enrolled.threshold, enrolled.threshold_rule = value, f"set to {value}"
    else:
        trained.enrollment = enrolled
        cosines, labels = validation_cosines(trained)
        enrolled.threshold = enrollment.calibrate(cosines, labels, value)
        enrolled.threshold_rule = (f"calibrate:{value} on the validation split ({len(labels)} images of the trained "
                                   "classes, each scored with its own class hidden)")
    return enrolled


def listing(trained: run.TrainedModel) -> str:
    enrolled = trained.enrollment
    lines = [f"{trained.workdir}: trained classes: {', '.join(trained.base_class_names)}"]
    if enrolled is None:
        return lines[0] + "\nno enrolled classes"
    lines.append(f"threshold {enrolled.threshold:.4f} ({enrolled.threshold_rule})")
    lines += [f"  {e['name']}: n={e['n']}, enrolled {e['date']}, from {e['sources'][0]}"
              + (f" and {len(e['sources']) - 1} more" if len(e["sources"]) > 1 else "") for e in enrolled.entries]
    return "\n".join(lines)


def main(argv) -> None:
    cli.setup(argv[:1])
    inputs = argv[1:] + ([FLAGS.images] if FLAGS.images else [])
    workdir = Path(FLAGS.workdir)
    with cli.user_errors():
        trained = run.load_run(workdir)
        if FLAGS.list:
            print(listing(trained))
            return
        if FLAGS.remove:
            remaining = enrollment.remove(trained.enrollment, FLAGS.remove)
            if remaining.entries:
                enrollment.write(workdir, remaining)
            else:  # the run is back to its trained classes
                for name in (enrollment.ENROLLED_FILE, enrollment.CENTRES_FILE):
                    (workdir / name).unlink(missing_ok=True)
            print(f"removed {FLAGS.remove!r} from {workdir}; enrolled now: {', '.join(remaining.names) or 'none'}")
            return
        if FLAGS.class_name is None:
            if FLAGS.threshold is None:
                raise ConfigError("give --class_name=NAME with --images=DIR or image files, or --list, --remove=NAME or --threshold")
            if inputs:
                raise ConfigError("images were given without --class_name=NAME")
            if trained.enrollment is None:
                raise RunError(f"{workdir}: no enrolled classes to set a threshold for; enroll a class first")
            enrolled = set_threshold(trained, trained.enrollment, FLAGS.threshold)
        else:
            if not inputs:
                raise ConfigError(f"no images for {FLAGS.class_name!r}: give --images=DIR or image files")
            enrolled = enroll(trained, FLAGS.class_name, inputs, FLAGS.n, not FLAGS.no_detect, FLAGS.detector, FLAGS.seed)
            if FLAGS.threshold is not None:
                enrolled = set_threshold(trained, enrolled, FLAGS.threshold)
        enrollment.write(workdir, enrolled)
        trained.enrollment = enrolled
    print(listing(trained))


def define_flags() -> None:
    """The command's flags, defined only when it runs (other commands define some of the same names)."""
    flags.DEFINE_string("workdir", None, "A run trained with a cosine head (amsoftmax/cosface/lmcl, arcface, dam_softmax, dams).")
    flags.DEFINE_string("class_name", None, "Name of the class to enroll.")
    flags.DEFINE_string("images", None, "Folder of the class's images (searched recursively); or give files after the flags.")
    flags.DEFINE_integer("n", 10, "Images to enroll from (a seeded draw when more are given; fewer is an error).")
    flags.DEFINE_bool("no_detect", False, "The images are face crops already: skip face detection.")
    flags.DEFINE_enum("detector", "mtcnn", ["mtcnn", "haar"], "Face detector.")
    flags.DEFINE_integer("seed", 0, "Seed of the draw of n images.")
    flags.DEFINE_string("threshold", None, "Open-set threshold on the best cosine: a value, or calibrate:FAR (default 0.6).")
    flags.DEFINE_bool("list", False, "List the enrolled classes and the threshold.")
    flags.DEFINE_string("remove", None, "Remove this enrolled class.")


if __name__ == "__main__":
    define_flags()
    cli.run(main, required=("workdir",))
