"""Inference benchmarks (issue 9, item 6): model-only images/s and end-to-end ``predict`` faces/s.

Baseline CNN at the demo width, 48×48×1, on every local device. The model's weights are
random (speed does not depend on them). End to end = decode a JPEG + MTCNN detection +
crop/align + the model, on 512×512 and 350×350 copies of scikit-image's astronaut photo
(one face each), batched across images as ``python -m ferjax.predict`` does. The stage
split shows which part bounds the rate.

    /work/shared/tools/cpu-slot pytest benchmarks/test_predict_bench.py -s --benchmark-columns=min,median
"""

from __future__ import annotations

import runpy
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from ferjax import parallel, run
from ferjax.data import images as image_io
from ferjax.models.classifier import build_model

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) gives the astronaut photo")
pytest.importorskip("cv2", reason="the predict extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = 32
_results: dict[str, float] = {}


@pytest.fixture(scope="module")
def model() -> run.TrainedModel:
    config = runpy.run_path(str(ROOT / "configs" / "demo.py"))["get_config"]()
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    classifier, _ = build_model(config, len(names))
    mesh = parallel.make_mesh()
    variables = jax.device_put(run.init_variables(classifier, config, 0), parallel.replicated(mesh))
    return run.TrainedModel(Path("."), {}, config, names, 0, "random", classifier, variables, mesh, 256)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    astronaut = Image.fromarray(skimage_data.astronaut())
    paths = []
    for i in range(PHOTOS):
        path = folder / f"astronaut_{i}.jpg"
        (astronaut if i % 2 else astronaut.resize((350, 350))).save(path, quality=90)
        paths.append(path)
    return paths


def test_model_only_images_per_second(benchmark, model):
    batch = np.random.default_rng(0).uniform(-1, 1, (256, 48, 48, 1)).astype(np.float32)
    model.logits_of_batch(batch)  # compile
    benchmark.pedantic(model.logits_of_batch, args=(batch,), rounds=10, iterations=1)
    _results["model images/s"] = 256 / benchmark.stats.stats.min


def test_end_to_end_predict_faces_per_second(benchmark, model, photos):
    from ferjax.predict import Predictor

    predictor = Predictor(model)
    predictor.predict(photos[:2])  # compile the detector's and the model's shapes
    found = benchmark.pedantic(predictor.predict, args=(photos,), rounds=3, iterations=1)
    assert len({p.path for p in found}) == PHOTOS
    _results["end-to-end faces/s"] = len(found) / benchmark.stats.stats.min
    start = time.perf_counter()
    decoded = [image_io.read_image(p) for p in photos]
    _results["decode ms/image"] = 1e3 * (time.perf_counter() - start) / PHOTOS
    for chunk in range(0, PHOTOS, 8):  # as predict batches them; the first pass compiles
        predictor.detector.detect_batch(decoded[chunk : chunk + 8])
    start = time.perf_counter()
    faces = [f for chunk in range(0, PHOTOS, 8) for f in predictor.detector.detect_batch(decoded[chunk : chunk + 8])]
    _results["detect ms/image"] = 1e3 * (time.perf_counter() - start) / PHOTOS
    from ferjax.faces import crop_face

    crops = [crop_face(im, f[0]) for im, f in zip(decoded, faces)]
    predictor.probabilities(crops)
    start = time.perf_counter()
    predictor.probabilities(crops)
    _results["prepare+model ms/face"] = 1e3 * (time.perf_counter() - start) / PHOTOS


def teardown_module():
    for name, value in _results.items():
        print(f"\npredict {name}: {value:,.1f} (baseline CNN demo width, 48x48x1, {jax.device_count()} device(s))")
