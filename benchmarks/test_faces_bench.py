"""Face detection (``ferjax.faces``): ms/image for MTCNN and the Haar cascade, and detection rates.

Timing: skimage's ``astronaut`` at 512×512 and shrunk to 350×350, one image per call (what
``python -m ferjax.predict`` does for a photo), and MTCNN on a batch of 8 (350×350) per call;
compile time excluded (one warm-up call).

Detection (no timing; a small, honest sample): the astronaut is the only clear human face in
``skimage.data``, so 15 variants of it (lighting, blur, noise, JPEG, rotation, size, crops,
occlusion) are scored: found = a face with IoU > 0.5 against her face box moved with the
variant. ``skimage.data.lfw_subset`` adds 100 tiny (25×25) LFW face crops and 100 non-faces,
upscaled ×4 (bicubic). False positives: faces reported on 11 ``skimage.data`` photos without
a frontal human face (``camera``, the cameraman, does show a man's face, in profile behind
his camera: counted apart).

    pytest benchmarks/test_faces_bench.py --benchmark-columns=min,median -s
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from ferjax.faces import boxes, make_detector

skimage_data = pytest.importorskip("skimage.data")
FACE = np.array([181.0, 61.0, 268.0, 173.0])  # the astronaut's face box (512×512)
_timings: dict[str, float] = {}
_rates: list[str] = []


@pytest.fixture(scope="module")
def detectors():
    return {name: make_detector(name) for name in ("mtcnn", "haar")}


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


def _resized(image, size):
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


@pytest.mark.parametrize("side", [512, 350])
@pytest.mark.parametrize("name", ["mtcnn", "haar"])
def test_ms_per_image(benchmark, detectors, astronaut, name, side):
    image = astronaut if side == 512 else _resized(astronaut, (side, side))
    detector = detectors[name]
    assert detector.detect(image)  # warm-up (compiles MTCNN for this size)
    benchmark.pedantic(detector.detect, args=(image,), rounds=15, iterations=1, warmup_rounds=1)
    _timings[f"{name} {side}x{side}, 1 image/call"] = benchmark.stats.stats.min * 1000


def test_mtcnn_ms_per_image_batched(benchmark, detectors, astronaut):
    base = _resized(astronaut, (350, 350))
    batch = [np.roll(base, 9 * k, axis=1) for k in range(8)]
    detector = detectors["mtcnn"]
    assert all(detector.detect_batch(batch))
    benchmark.pedantic(detector.detect_batch, args=(batch,), rounds=7, iterations=1, warmup_rounds=1)
    _timings["mtcnn 350x350, 8 images/call"] = benchmark.stats.stats.min * 1000 / len(batch)


def _rotated(image, degrees):
    return np.asarray(Image.fromarray(image).rotate(degrees, resample=Image.Resampling.BILINEAR, center=(224, 117)))


def _jpeg(image, quality):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def _variants(astronaut):
    """(name, image, expected face box) for each astronaut variant."""
    rng = np.random.default_rng(0)
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    x0, y0, x1, y1 = FACE.astype(int)
    occluded = astronaut.copy()
    occluded[92:112, x0:x1] = 0  # a black band over the eyes (sunglasses)
    small = np.full((512, 512, 3), 120, np.uint8)
    small[300:460, 40:200] = _resized(astronaut, (160, 160))  # face ~27×35 px
    variants = [
        ("original", astronaut, FACE),
        ("grayscale", np.repeat(gray[:, :, None], 3, axis=2), FACE),
        ("mirrored", np.ascontiguousarray(astronaut[:, ::-1]), np.array([512 - FACE[2], FACE[1], 512 - FACE[0], FACE[3]])),
        ("dark x0.3", (astronaut * 0.3).astype(np.uint8), FACE),
        ("low contrast", (astronaut * 0.3 + 150).astype(np.uint8), FACE),
        ("blur sigma 3", np.asarray(Image.fromarray(astronaut).filter(ImageFilter.GaussianBlur(3))), FACE),
        ("noise sigma 25", np.clip(astronaut + rng.normal(0, 25, astronaut.shape), 0, 255).astype(np.uint8), FACE),
        ("jpeg q10", _jpeg(astronaut, 10), FACE),
        ("rotated 15", _rotated(astronaut, 15), FACE),
        ("rotated -30", _rotated(astronaut, -30), FACE),
        ("rotated 45", _rotated(astronaut, 45), FACE),
        ("small face ~30px", small, FACE * 160 / 512 + np.array([40, 300, 40, 300])),
        ("face crop, no margin", np.ascontiguousarray(astronaut[y0:y1, x0:x1]), FACE - np.array([x0, y0, x0, y0])),
        ("tight crop (cheeks cut)", np.ascontiguousarray(astronaut[y0 + 15 : y1, x0 + 10 : x1 - 10]), FACE - np.array([x0 + 10, y0 + 15] * 2)),
        ("eyes covered", occluded, FACE),
    ]
    return variants


def _rgb(image):
    image = (image * 255).astype(np.uint8) if image.dtype == bool else image
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else np.ascontiguousarray(image[:, :, :3])


def _found(faces, expected) -> bool:
    return any(boxes.overlap(np.asarray([f.box]), expected[None])[0, 0] > 0.5 for f in faces)


def test_detection_rates(detectors, astronaut):
    variants = _variants(astronaut)
    lfw = skimage_data.lfw_subset()  # (200, 25, 25) in [0, 1]: 100 faces then 100 non-faces
    lfw = [np.repeat(_resized((crop * 255).astype(np.uint8), (100, 100))[:, :, None], 3, axis=2) for crop in lfw]
    others = {name: _rgb(getattr(skimage_data, name)()) for name in (
        "chelsea", "coffee", "rocket", "horse", "coins", "page", "hubble_deep_field", "immunohistochemistry",
        "brick", "grass", "gravel")}
    camera = np.repeat(skimage_data.camera()[:, :, None], 3, axis=2)
    for name, detector in detectors.items():
        found = [_found(faces, box) for (_, _, box), faces in zip(variants, detector.detect_batch([v[1] for v in variants]))]
        missed = [variant[0] for variant, ok in zip(variants, found) if not ok]
        lfw_faces = detector.detect_batch(lfw)
        hits = sum(bool(f) for f in lfw_faces[:100])
        false_lfw = sum(bool(f) for f in lfw_faces[100:])
        false_photos = {k: len(f) for k, f in zip(others, detector.detect_batch(list(others.values()))) if f}
        _rates.append(
            f"{name}: astronaut variants {sum(found)}/{len(found)} (missed: {', '.join(missed) or 'none'}); "
            f"LFW subset x4: {hits}/100 faces found, {false_lfw}/100 non-faces with a detection; "
            f"non-face photos with detections: {false_photos or 'none'} of {len(others)}; "
            f"camera (cameraman): {len(detector.detect(camera))} face(s)"
        )
    assert _rates


def teardown_module():
    for case, ms in _timings.items():
        print(f"\nfaces {case}: {ms:.1f} ms/image")
    for line in _rates:
        print(f"\nfaces {line}")
