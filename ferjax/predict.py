"""Predict expressions on photos and videos with one or more trained runs (SPEC §1, §10).

    python -m ferjax.predict --workdir=RUN [--workdir=RUN2 …] INPUT… [--out=DIR] [--no_detect]
        [--detector=mtcnn|haar] [--boxes=FILE] [--tta=none|flip|crops|crops_flip|augment] [--annotate]
        [--explain [--explain_layer=MODULE_PATH]] [--every_nth_frame=K]

INPUT: image files, folders (searched recursively), video files, or ``-`` for paths on stdin.
Faces are found with MTCNN (:mod:`ferjax.faces`; ``pip install 'ferjax[predict]'``), cropped
square with a margin and turned upright on the eye line, then prepared exactly like the
run's training images (:meth:`ferjax.run.TrainedModel.prepare`). ``--no_detect`` takes each
image as one face that is already cropped; ``--boxes`` gives the faces (CSV ``path,x0,y0,x1,y1``).
Several runs are an ensemble: the mean of their probabilities. Faces are batched across
images: one jitted call per batch of faces.

Writes ``predictions.jsonl`` and ``predictions.csv`` (path, frame, face index, box, detection
score, label, per-class probabilities), ``errors.jsonl`` (one line per input that failed:
unreadable, corrupt, not an image, missing, no face, undecodable video) and, with
``--annotate``, copies of the images with boxes and labels; with ``--explain``, one PNG per
face in ``explained/``: the crop, its Grad-CAM map (:mod:`ferjax.analysis.gradcam`, first run,
the predicted class, or the best trained class when the answer is an enrolled class or
"unknown") and the overlay. Exit status 0 when anything was predicted, 1 when nothing was.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sys
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np
from absl import flags
from tqdm import tqdm

from ferjax import cli, files, run
from ferjax.data import images as image_io
from ferjax.errors import ConfigError, DataError, RunError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


@dataclasses.dataclass
class Prediction:
    path: str
    frame: int | None  # video frame index; None for a still image
    face: int  # face index within the image or frame (best detection first)
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the image's pixels
    score: float  # detection score (1.0 for --no_detect and given boxes)
    label: str
    probabilities: dict[str, float]
    explanation: Explained | None = dataclasses.field(default=None, repr=False)  # with explain=True


class Explained(NamedTuple):
    """Grad-CAM of one face: the explained class, the map (S, S) in [0, 1] and the face crop."""

    class_name: str
    cam: np.ndarray
    crop: np.ndarray


@dataclasses.dataclass
class _Frame:
    path: str
    frame: int | None
    pixels: np.ndarray  # uint8 (H, W, 3) RGB


class Predictor:
    """Faces → class probabilities with one or more runs (workdirs or loaded ``TrainedModel``s;
    several are an equal-weight ensemble).

    ``detect``: find faces (``detector`` "mtcnn" or "haar"); False takes each image as one
    cropped face. ``tta``: a :mod:`ferjax.data.tta` mode. ``margin``: crop margin on each
    side, as a fraction of the box. ``explain``: attach each face's Grad-CAM (first run; layer
    ``explain_layer``, default the last spatial feature map).
    """

    def __init__(self, workdirs: str | Path | Sequence[str | Path], detect: bool = True, detector: str = "mtcnn",
                 tta: str = "none", tta_samples: int = 8, checkpoint: str = "best", margin: float = 0.15,
                 batch_size: int = 64, explain: bool = False, explain_layer: str | None = None):
        workdirs = [workdirs] if isinstance(workdirs, (str, Path, run.TrainedModel)) else list(workdirs)
        self.models = [w if isinstance(w, run.TrainedModel) else run.load_run(w, checkpoint, batch_size=batch_size)
                       for w in workdirs]
        self.class_names = self.models[0].class_names
        for model in self.models[1:]:
            if model.class_names != self.class_names:
                raise RunError(f"{model.workdir} has classes {model.class_names}, "
                               f"{self.models[0].workdir} has {self.class_names}: an ensemble needs one class set")
        from ferjax.data import tta as tta_views

        tta_views.views(tta, self.models[0].config, tta_samples)  # a bad mode fails now, not mid-run
        self.tta, self.tta_samples, self.margin, self.batch_size = tta, tta_samples, margin, batch_size
        self.gradcam = None
        if explain:
            from ferjax.analysis.gradcam import GradCAM

            self.gradcam = GradCAM(self.models[0], explain_layer)
        self.detector = None
        if detect:
            from ferjax.faces import make_detector

            self.detector = make_detector(detector)

    def probabilities(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Mean class probabilities of the runs for face crops (any size, gray or RGB)."""
        return np.mean([m.probabilities(crops, self.tta, self.tta_samples) for m in self.models], axis=0)

    def crops(self, inputs: Iterable[str | Path | np.ndarray], errors: list) -> list[tuple[str, np.ndarray]]:
        """The best face of each still image or frame as (path, crop); one without a face is a line in ``errors``."""
        frames = list(_frames(inputs, errors))
        return [(frame.path, crop) for frame, index, _, crop in self._faces(frames, {}, errors) if index == 0]

    def predict(self, inputs: Iterable[str | Path | np.ndarray], boxes: dict | None = None,
                errors: list | None = None) -> list[Prediction]:
        """Predictions for paths (images, folders, videos) or uint8 arrays (H, W[, 3])."""
        return list(self.iter_predictions(_frames(inputs, errors if errors is not None else []), boxes or {}, errors))

    def iter_predictions(self, frames: Iterable[_Frame], boxes: dict, errors: list | None = None) -> Iterator[Prediction]:
        """Predictions as faces fill batches; ``boxes`` maps a path to the faces to use instead of detecting."""
        pending: list[tuple[_Frame, int, object, np.ndarray]] = []  # frame, face index, face, crop
        chunk: list[_Frame] = []
        for frame in frames:
            chunk.append(frame)
            if len(chunk) >= 8:
                pending += self._faces(chunk, boxes, errors)
                chunk = []
            if len(pending) >= self.batch_size:
                yield from self._classify(pending)
                pending = []
        pending += self._faces(chunk, boxes, errors)
        yield from self._classify(pending)

    def _faces(self, frames: list[_Frame], boxes: dict, errors: list | None):
        from ferjax.faces import Face, crop_face

        if not frames:
            return []
        to_detect = [f for f in frames if f.path not in boxes] if self.detector is not None else []
        detected = iter(self.detector.detect_batch([f.pixels for f in to_detect]) if to_detect else [])
        found = []
        for f in frames:
            if f.path in boxes:
                found.append([Face(tuple(b)) for b in boxes[f.path]])
            elif self.detector is None:
                found.append([Face((0.0, 0.0, float(f.pixels.shape[1]), float(f.pixels.shape[0])))])
            else:
                found.append(next(detected))
        out = []
        for frame, faces in zip(frames, found):
            if not faces and errors is not None:
                where = f" frame {frame.frame}" if frame.frame is not None else ""
                errors.append({"path": frame.path, "frame": frame.frame, "error": f"{frame.path}{where}: no face found"})
            for index, face in enumerate(faces):
                whole = self.detector is None and frame.path not in boxes
                crop = frame.pixels if whole else crop_face(frame.pixels, face, self.margin)
                out.append((frame, index, face, crop))
        return out

    def _classify(self, pending) -> Iterator[Prediction]:
        if not pending:
            return
        crops = [crop for *_, crop in pending]
        probabilities = self.probabilities(crops)
        explained = self._explain(crops, probabilities) if self.gradcam is not None else [None] * len(crops)
        for (frame, index, face, _), p, explanation in zip(pending, probabilities, explained):
            yield Prediction(
                path=frame.path, frame=frame.frame, face=index, box=tuple(round(float(v), 2) for v in face.box),
                score=round(float(face.score), 6), label=self.class_names[int(p.argmax())],
                probabilities={n: round(float(v), 6) for n, v in zip(self.class_names, p)}, explanation=explanation,
            )

    def _explain(self, crops: list[np.ndarray], probabilities: np.ndarray) -> list[Explained]:
        """Grad-CAM of the answer, or of the best trained class when the answer is enrolled or "unknown"."""
        trained = len(self.models[0].base_class_names)
        best = probabilities[:, :trained].argmax(-1)
        result = self.gradcam(crops, best)
        names = self.models[0].base_class_names
        return [Explained(names[int(c)], cam, crop) for c, cam, crop in zip(result.classes, result.maps, crops)]


def expand(inputs: Iterable[str | Path], errors: list) -> Iterator[Path]:
    """Files of the inputs: folders searched recursively (images and videos, sorted), ``-`` = stdin."""
    for item in inputs:
        if str(item) == "-":
            yield from expand((line.strip() for line in sys.stdin if line.strip()), errors)
            continue
        path = Path(item)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                              and (p.suffix.lower() in IMAGE_SUFFIXES or image_io.is_video(p)))
        elif path.exists():
            yield path
        else:
            errors.append({"path": str(path), "frame": None, "error": f"{path}: no such file or directory"})


def _frames(inputs: Iterable, errors: list, every_nth_frame: int = 1) -> Iterator[_Frame]:
    """Decoded RGB frames of arrays, images and videos; a failure is a line in ``errors``."""
    arrays, paths = [], []
    for i, item in enumerate(inputs):
        (arrays if isinstance(item, np.ndarray) else paths).append((i, item))
    for i, array in arrays:
        pixels = np.asarray(array)
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        if pixels.ndim != 3 or pixels.shape[-1] not in (1, 3) or pixels.dtype != np.uint8:
            errors.append({"path": f"<array {i}>", "frame": None, "error": f"<array {i}>: need uint8 (H, W[, 1|3]), got {pixels.dtype} {pixels.shape}"})
            continue
        yield _Frame(f"<array {i}>", None, np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels)
    for path in expand((p for _, p in paths), errors):
        try:
            if image_io.is_video(path):
                for index, pixels in image_io.read_video_frames(path, every_nth_frame):
                    yield _Frame(str(path), index, pixels)
            else:
                yield _Frame(str(path), None, image_io.read_image(path))
        except DataError as error:
            errors.append({"path": str(path), "frame": None, "error": str(error)})


def read_boxes(path: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """``--boxes`` CSV: ``path,x0,y0,x1,y1`` per face (a header row is allowed)."""
    boxes: dict[str, list] = {}
    try:
        rows = list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8-sig"))))
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read boxes ({error})") from None
    for number, row in enumerate(rows, start=1):
        if not row or (number == 1 and row[0].strip().lower() == "path"):
            continue
        try:
            name, *coords = row
            x0, y0, x1, y1 = (float(v) for v in coords)
        except ValueError:
            raise DataError(f"{path} row {number}: expected path,x0,y0,x1,y1, got {','.join(row)}") from None
        if not (x1 > x0 and y1 > y0):
            raise DataError(f"{path} row {number}: an empty box ({x0},{y0},{x1},{y1})")
        boxes.setdefault(name, []).append((x0, y0, x1, y1))
    return boxes


# ---------------------------------------------------------------------------- outputs


def write_outputs(out: Path, predictions: list[Prediction], errors: list[dict], class_names: Sequence[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = ({k: v for k, v in dataclasses.asdict(p).items() if k != "explanation"} for p in predictions)
    files.write_atomically(out / "predictions.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "frame", "face", "x0", "y0", "x1", "y1", "score", "label", *class_names])
    for p in predictions:
        writer.writerow([p.path, "" if p.frame is None else p.frame, p.face, *p.box, p.score, p.label,
                         *(p.probabilities[n] for n in class_names)])
    files.write_atomically(out / "predictions.csv", buffer.getvalue())
    files.write_atomically(out / "errors.jsonl", "".join(json.dumps(e) + "\n" for e in errors))


def annotate(out: Path, predictions: list[Prediction]) -> int:
    """Copies of the still images with each face's box and label drawn; returns how many."""
    from PIL import Image, ImageDraw

    by_path: dict[str, list[Prediction]] = {}
    for p in predictions:
        if p.frame is None and not p.path.startswith("<array"):
            by_path.setdefault(p.path, []).append(p)
    folder = out / "annotated"
    folder.mkdir(parents=True, exist_ok=True)
    for number, (path, faces) in enumerate(by_path.items()):
        image = Image.fromarray(image_io.read_image(Path(path)))
        draw = ImageDraw.Draw(image)
        width = max(2, round(max(image.size) / 300))
        for p in faces:
            draw.rectangle(p.box, outline=(255, 64, 32), width=width)
            draw.text((p.box[0] + width, max(0, p.box[1] - 12)), f"{p.label} {p.probabilities[p.label]:.2f}", fill=(255, 64, 32))
        image.save(folder / f"{number:05d}_{Path(path).stem}.png")
    return len(by_path)


def write_explanations(out: Path, predictions: list[Prediction]) -> int:
    """One PNG per explained face in ``OUT/explained/``: crop | Grad-CAM map | overlay, with the answer."""
    import matplotlib
    from PIL import Image, ImageDraw

    from ferjax.analysis.gradcam import overlay

    folder = out / "explained"
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for number, p in enumerate(predictions):
        if p.explanation is None:
            continue
        crop = p.explanation.crop if p.explanation.crop.ndim == 3 else p.explanation.crop[..., None]
        crop = np.repeat(crop, 3, axis=-1) if crop.shape[-1] == 1 else crop
        side = 160
        face = np.asarray(Image.fromarray(crop).resize((side, side), Image.BILINEAR))
        cam = np.asarray(Image.fromarray(p.explanation.cam.astype(np.float32)).resize((side, side), Image.BILINEAR))
        heat = (matplotlib.colormaps["jet"](np.clip(cam, 0, 1))[..., :3] * 255).astype(np.uint8)
        canvas = Image.new("RGB", (3 * side, side + 18), (255, 255, 255))
        for column, panel in enumerate((face, heat, overlay(face, cam))):
            canvas.paste(Image.fromarray(panel), (column * side, 18))
        text = f"{p.label} {p.probabilities[p.label]:.2f}; Grad-CAM of {p.explanation.class_name}"
        ImageDraw.Draw(canvas).text((4, 3), text, fill=(0, 0, 0))
        frame = "" if p.frame is None else f"_frame{p.frame}"
        canvas.save(folder / f"{number:05d}_{Path(p.path).stem}{frame}_face{p.face}.png")
        count += 1
    return count


FLAGS = flags.FLAGS


def main(argv) -> None:
    cli.setup(argv[:1])  # the remaining arguments are the inputs
    inputs = argv[1:]
    if not inputs:
        cli.fail("no INPUT given: image files, folders, videos, or - for paths on stdin", 2)
    out = Path(FLAGS.out)
    with cli.user_errors():
        if FLAGS.every_nth_frame < 1:
            raise ConfigError(f"--every_nth_frame={FLAGS.every_nth_frame} must be at least 1")
        predictor = Predictor(FLAGS.workdir, detect=not FLAGS.no_detect,
                              detector=FLAGS.detector, tta=FLAGS.tta, tta_samples=FLAGS.tta_samples,
                              checkpoint=FLAGS.checkpoint, batch_size=FLAGS.batch_size, explain=FLAGS.explain,
                              explain_layer=FLAGS.explain_layer)
        boxes = read_boxes(Path(FLAGS.boxes)) if FLAGS.boxes else {}
        errors: list[dict] = []
        frames = tqdm(_frames(inputs, errors, FLAGS.every_nth_frame), unit="image", desc="predict", dynamic_ncols=True)
        predictions = list(predictor.iter_predictions(frames, boxes, errors))
        frames.close()
        write_outputs(out, predictions, errors, predictor.class_names)
        annotated = annotate(out, predictions) if FLAGS.annotate else 0
        explained = write_explanations(out, predictions) if FLAGS.explain else 0
    images = len({(p.path, p.frame) for p in predictions})
    note = (f", {annotated} annotated" if FLAGS.annotate else "") + (f", {explained} explained in {out}/explained" if FLAGS.explain else "")
    print(f"{images} images/frames with faces, {len(predictions)} faces, {len(errors)} failures{note} → {out}/predictions.jsonl"
          + (f" (failures in {out}/errors.jsonl)" if errors else ""))
    if not predictions:
        raise SystemExit(1)


def define_flags() -> None:
    """The command's flags, defined only when it runs (other commands define some of the same names)."""
    flags.DEFINE_multi_string("workdir", None, "A trained run's workdir (repeat for an ensemble).")
    flags.DEFINE_string("out", "predictions", "Output directory.")
    flags.DEFINE_bool("no_detect", False, "Skip face detection: each image is one face that is already cropped.")
    flags.DEFINE_enum("detector", "mtcnn", ["mtcnn", "haar"], "Face detector.")
    flags.DEFINE_string("boxes", None, "CSV of faces to use instead of detection: path,x0,y0,x1,y1 per row.")
    flags.DEFINE_string("tta", "none", "Test-time augmentation: none, flip, crops, crops_flip or augment.")
    flags.DEFINE_integer("tta_samples", 8, "Draws of the training augmentation for --tta=augment.")
    flags.DEFINE_bool("annotate", False, "Write copies of the images with boxes and labels to OUT/annotated/.")
    flags.DEFINE_bool("explain", False, "Write each face's Grad-CAM (crop, map, overlay) to OUT/explained/.")
    flags.DEFINE_string("explain_layer", None, "Module path of the Grad-CAM layer (default: the last spatial feature map).")
    flags.DEFINE_integer("every_nth_frame", 1, "Videos: predict every k-th frame.")
    flags.DEFINE_string("checkpoint", "best", "Checkpoint of each run: best, latest or a step number.")
    flags.DEFINE_integer("batch_size", 64, "Faces per jitted model call.")


if __name__ == "__main__":
    define_flags()
    cli.run(main, required=("workdir",))

