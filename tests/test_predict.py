"""``python -m ferjax.predict`` and ``ferjax.Predictor``: faces found, batched, every bad input one line (issue 9).

A tiny demo run is the model (its accuracy does not matter here); the photo is scikit-image's
astronaut (Eileen Collins, public domain), never FER-2013 or CK+.
"""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferjax import run, train
from ferjax.predict import Predictor

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) gives the astronaut photo")
pytest.importorskip("cv2", reason="the predict extra (opencv-python-headless, mtcnn) is not installed")

ROOT = Path(__file__).resolve().parents[1]
FACE = (180, 60, 270, 175)  # the astronaut's face, x0 y0 x1 y1 (approximate)


def tiny_demo_config():
    c = runpy.run_path(str(ROOT / "configs" / "demo.py"))["get_config"]()
    c.datasets.demo.train_size, c.datasets.demo.validation_size, c.datasets.demo.test_size = 64, 32, 32
    c.num_epochs, c.batch_size, c.eval_batch_size, c.progress_bar = 1, 32, 32, False
    return c


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo_run")
    train.train_and_evaluate(tiny_demo_config(), path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    astronaut = skimage_data.astronaut()
    Image.fromarray(astronaut).save(folder / "astronaut.jpg", quality=92)
    gray = Image.fromarray(astronaut).convert("L")
    gray.save(folder / "gray.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: a viewer turns it 90° clockwise back upright
    Image.fromarray(astronaut).rotate(90, expand=True).save(folder / "exif_rotated.jpg", exif=exif, quality=92)
    return folder


def iou(a, b):
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def cli(*args, stdin=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "ferjax.predict", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, input=stdin)


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_the_face_is_found_as_is_upright_by_exif_and_in_grayscale(workdir, photos):
    predictor = Predictor(workdir)
    errors = []
    found = predictor.predict([photos], errors=errors)
    assert not errors
    best = {Path(p.path).name: p for p in found if p.face == 0}
    assert set(best) == {"astronaut.jpg", "gray.png", "exif_rotated.jpg"}
    for name, p in best.items():
        assert iou(p.box, FACE) > 0.5, (name, p.box)
        assert p.label in predictor.class_names and sum(p.probabilities.values()) == pytest.approx(1, abs=1e-4)


def test_pasted_faces_are_found_at_three_sizes_and_two_positions(workdir):
    predictor = Predictor(workdir)
    face = skimage_data.astronaut()[20:220, 130:320]  # 200 x 190 around the face
    for scale in (0.5, 1.0, 2.0):
        small = np.asarray(Image.fromarray(face).resize((round(190 * scale), round(200 * scale))))
        for top, left in ((10, 15), (300, 420)):
            canvas = np.full((800, 900, 3), 90, np.uint8)
            canvas[top : top + small.shape[0], left : left + small.shape[1]] = small
            (p, *_) = [p for p in predictor.predict([canvas]) if p.face == 0]
            expected = [left + (180 - 130) * scale, top + (60 - 20) * scale, left + (270 - 130) * scale, top + (175 - 20) * scale]
            assert iou(p.box, expected) > 0.4, (scale, top, left, p.box, expected)


def test_faces_are_batched_across_images(workdir, monkeypatch):
    predictor = Predictor(workdir, detect=False)
    calls = []
    original = run.TrainedModel.logits_of_batch
    monkeypatch.setattr(run.TrainedModel, "logits_of_batch", lambda self, x: calls.append(len(x)) or original(self, x))
    images = [np.random.default_rng(i).integers(0, 256, (30 + i, 40, 3), np.uint8) for i in range(5)]
    found = predictor.predict(images)
    assert len(found) == 5 and calls == [5]
    np.testing.assert_allclose(  # batched == one at a time
        [p.probabilities[predictor.class_names[0]] for p in found],
        [predictor.predict([im])[0].probabilities[predictor.class_names[0]] for im in images], atol=1e-5)


def test_explain_attaches_a_grad_cam_of_each_answer(workdir, photos):
    predictor = Predictor(workdir, detect=False, explain=True)
    images = [skimage_data.astronaut()[20:220, 130:320], np.full((50, 60, 3), 120, np.uint8)]
    found = predictor.predict(images)
    size = predictor.models[0].image_size
    for p in found:
        assert p.explanation.cam.shape == (size, size) and 0.0 <= p.explanation.cam.min() <= p.explanation.cam.max() <= 1.0
        assert p.explanation.class_name == p.label  # no enrolled classes: the answer itself is explained
    assert found[0].explanation.crop.shape == images[0].shape


def test_cli_reports_every_bad_input_and_goes_on(workdir, photos, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.jpg").write_text("not an image")
    data = (photos / "astronaut.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(data[: len(data) // 3])
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(bad / "no_face.png")
    (bad / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(300))
    out = tmp_path / "out"
    result = cli(f"--workdir={workdir}", photos / "astronaut.jpg", bad, tmp_path / "missing.png", f"--out={out}", "--annotate",
                 "--explain")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = {Path(e["path"]).name: e["error"] for e in read_jsonl(out / "errors.jsonl")}
    assert set(errors) == {"empty.jpg", "notes.jpg", "truncated.jpg", "no_face.png", "broken.mp4", "missing.png"}
    assert all(name in message for name, message in errors.items())
    assert "no face" in errors["no_face.png"]
    assert read_jsonl(out / "predictions.jsonl")[0]["path"].endswith("astronaut.jpg")
    assert (out / "predictions.csv").read_text().splitlines()[0].startswith("path,frame,face,x0,y0,x1,y1,score,label,")
    assert len(list((out / "annotated").glob("*.png"))) == 1
    (explained,) = (out / "explained").glob("*.png")  # the one face: crop | Grad-CAM | overlay
    assert explained.name.endswith("astronaut_face0.png") and Image.open(explained).size == (480, 178)
    assert "1 images/frames with faces" in result.stdout and "6 failures" in result.stdout


def test_cli_exits_1_when_nothing_was_predicted(workdir, tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    result = cli(f"--workdir={workdir}", tmp_path / "empty.png", f"--out={tmp_path / 'out'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_paths_on_stdin_no_detect_and_video_frames(workdir, photos, tmp_path):
    import cv2

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (256, 256))
    frame = cv2.cvtColor(np.asarray(Image.fromarray(skimage_data.astronaut()).resize((256, 256))), cv2.COLOR_RGB2BGR)
    for _ in range(6):
        writer.write(frame)
    writer.release()
    out = tmp_path / "out"
    result = cli(f"--workdir={workdir}", "-", "--no_detect", "--every_nth_frame=2", f"--out={out}",
                 stdin=f"{photos / 'gray.png'}\n{video}\n")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = read_jsonl(out / "predictions.jsonl")
    assert [(Path(r["path"]).name, r["frame"]) for r in rows] == [("gray.png", None), ("clip.avi", 0), ("clip.avi", 2), ("clip.avi", 4)]
    assert rows[0]["box"] == [0.0, 0.0, 512.0, 512.0]


def test_user_boxes_replace_detection(workdir, photos, tmp_path):
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(f"path,x0,y0,x1,y1\n{photos / 'astronaut.jpg'},10,20,110,140\n")
    result = cli(f"--workdir={workdir}", photos / "astronaut.jpg", f"--boxes={boxes}", f"--out={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = read_jsonl(tmp_path / "out" / "predictions.jsonl")
    assert row["box"] == [10.0, 20.0, 110.0, 140.0] and row["score"] == 1.0
    boxes.write_text("a.jpg,1,2,3\n")
    result = cli(f"--workdir={workdir}", photos / "astronaut.jpg", f"--boxes={boxes}", f"--out={tmp_path / 'out2'}")
    assert result.returncode == 1 and "boxes.csv row 1" in result.stderr and "Traceback" not in result.stderr
