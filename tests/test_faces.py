"""ferjax.faces: MTCNN (JAX) and Haar detection, boxes, the pyramid, crops.

Only scikit-image's ``astronaut`` (Eileen Collins, NASA, public domain) is used: one frontal
face, ~87×112 px at (181, 61) in the 512×512 image. Most images here stay 512×512 so that the
P-Net pyramid compiles once for the module.
"""

import importlib.util
import math

import jax
import numpy as np
import pytest
from PIL import Image

from ferjax.data import images
from ferjax.faces import Face, MissingExtra, boxes, crop_face, eye_angle, make_detector, pyramid

if importlib.util.find_spec("mtcnn") is None:  # found, never imported: it imports TensorFlow
    pytest.skip("needs the predict extra: pip install 'ferjax[predict]'", allow_module_level=True)
skimage_data = pytest.importorskip("skimage.data")
from ferjax.faces import mtcnn, mtcnn_nets  # noqa: E402

FACE = np.array([181.0, 61.0, 268.0, 173.0])  # the astronaut's face as MTCNN boxes it (checked by eye)


def iou(a, b) -> float:
    return float(boxes.overlap(np.asarray(a, float)[None], np.asarray(b, float)[None])[0, 0])


def best_match(faces, box):
    return max(faces, key=lambda face: iou(face.box, box))


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def detector():
    return make_detector("mtcnn")


# --- boxes -----------------------------------------------------------------------------------


def test_overlap_union_and_min():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[5, 0, 15, 10], [0, 0, 5, 5], [20, 20, 30, 30], [3, 3, 3, 9]], float)
    np.testing.assert_allclose(boxes.overlap(a, b), [[50 / 150, 25 / 100, 0, 0]])
    np.testing.assert_allclose(boxes.overlap(a, b, "min"), [[50 / 100, 1.0, 0, 0]])


def test_nms_is_greedy_best_first():
    # a overlaps b, b overlaps c, a does not overlap c: greedy NMS keeps a and c.
    found = np.array([[0, 0, 10, 10], [4, 0, 14, 10], [9, 0, 19, 10], [50, 50, 60, 60]], float)
    scores = np.array([0.9, 0.95, 0.8, 0.1])
    assert boxes.nms(found, scores, 0.3).tolist() == [1, 3]
    assert boxes.nms(found, np.array([0.95, 0.9, 0.8, 0.1]), 0.3).tolist() == [0, 2, 3]
    assert boxes.nms(found, scores, 0.99).tolist() == [1, 0, 2, 3]
    inner = np.array([[0, 0, 10, 10], [2, 2, 6, 6]], float)  # IoU 0.16, overlap/min 1.0
    assert boxes.nms(inner, np.array([1.0, 0.5]), 0.7).tolist() == [0, 1]
    assert boxes.nms(inner, np.array([1.0, 0.5]), 0.7, mode="min").tolist() == [0]
    assert boxes.nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_square_and_regress():
    sq = boxes.square(np.array([[10, 20, 30, 60]], float))
    np.testing.assert_allclose(sq, [[0, 20, 40, 60]])
    np.testing.assert_allclose(boxes.regress(sq, np.array([[0.1, -0.1, 0.0, 0.5]])), [[4, 16, 40, 80]])


# --- pyramid ---------------------------------------------------------------------------------


def test_scales_follow_zhang_et_al():
    scales = pyramid.scales(512, 20, 0.709)
    assert len(scales) == 10 and scales[0] == pytest.approx(0.6) and scales[1] == pytest.approx(0.6 * 0.709)
    assert 512 * scales[-1] >= 12 > 512 * scales[-1] * 0.709


def test_area_resize_is_the_exact_box_average():
    rng = np.random.default_rng(0)
    image = rng.random((1, 13, 11, 2)).astype(np.float32)

    def exact(n_in, n_out):  # fraction of input pixel j inside output pixel i, brute force
        m = np.zeros((n_out, n_in))
        for i in range(n_out):
            a, b = i * n_in / n_out, (i + 1) * n_in / n_out
            for j in range(n_in):
                m[i, j] = max(0.0, min(b, j + 1) - max(a, j)) / (b - a)
        return m

    want = np.einsum("oh,pw,bhwc->bopc", exact(13, 5), exact(11, 4), image)
    np.testing.assert_allclose(np.asarray(jax.jit(lambda x: pyramid.area_resize(x, 5, 4))(image)), want, atol=1e-6)


def test_layout_packs_levels_without_overlap_at_even_offsets():
    levels = tuple((pyramid.level_size(480, s), pyramid.level_size(640, s)) for s in pyramid.scales(480, 20, 0.709))
    offsets, (height, width) = pyramid.layout(levels)
    taken = np.zeros((height, width), int)
    for (top, left), (h, w) in zip(offsets, levels):
        assert top % 2 == 0 and left % 2 == 0
        taken[top : top + h, left : left + w] += 1
    assert taken.max() == 1 and taken.sum() == sum(h * w for h, w in levels)
    assert taken.mean() > 0.7  # little waste


def test_packed_pnet_equals_pnet_on_each_level(detector):
    image = np.random.default_rng(1).integers(0, 256, (1, 128, 128, 3), np.uint8)
    levels = detector._levels(128, 128)
    _, prob = mtcnn._pnet_pyramid(detector._params["pnet"], image, levels=levels)
    chosen = [0, len(levels) // 2, len(levels) - 1]

    @jax.jit
    def alone(params, x):
        x = (x.astype(np.float32) - 127.5) / 128
        return [mtcnn._PNET.apply(params, pyramid.area_resize(x, *levels[k]))[1][0] for k in chosen]

    offsets = pyramid.layout(levels)[0]
    for k, want in zip(chosen, alone(detector._params["pnet"], image)):
        (top, left), (h, w) = offsets[k], levels[k]
        gh, gw = (h - pyramid.CELL) // 2 + 1, (w - pyramid.CELL) // 2 + 1  # windows wholly inside
        np.testing.assert_allclose(prob[0, top // 2 : top // 2 + gh, left // 2 : left // 2 + gw], want[:gh, :gw], atol=2e-5)


# --- MTCNN -----------------------------------------------------------------------------------


def test_weights_fit_the_flax_networks(detector):
    for name, net, size in [("pnet", mtcnn_nets.PNet(), 12), ("rnet", mtcnn_nets.RNet(), 24), ("onet", mtcnn_nets.ONet(), 48)]:
        init = jax.eval_shape(net.init, jax.random.key(0), np.zeros((1, size, size, 3), np.float32))
        assert jax.tree.map(np.shape, detector._params[name]) == jax.tree.map(np.shape, init), name


def test_finds_the_astronaut_with_plausible_landmarks(detector, astronaut):
    faces = detector.detect(astronaut)
    assert faces and faces == sorted(faces, key=lambda f: -f.score)
    face = faces[0]
    assert iou(face.box, FACE) > 0.9 and face.score > 0.99
    (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = face.landmarks
    x0, y0, x1, y1 = face.box
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in face.landmarks)
    assert lex < nx < rex and lmx < rmx  # left-to-right order
    assert max(ley, rey) < ny < min(lmy, rmy)  # eyes above the nose above the mouth
    assert abs(ley - rey) < 0.1 * (y1 - y0)  # upright face: level eyes


def test_exif_rotated_jpeg_is_detected_through_read_image(detector, astronaut, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90° counter-clockwise to display"
    Image.fromarray(np.ascontiguousarray(np.rot90(astronaut, k=-1))).save(tmp_path / "a.jpg", quality=95, exif=exif.tobytes())
    upright = images.read_image(tmp_path / "a.jpg")
    assert np.abs(upright.astype(int) - astronaut).mean() < 4
    assert iou(detector.detect(upright)[0].box, FACE) > 0.85


def test_grayscale(detector, astronaut):
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    assert iou(detector.detect(np.repeat(gray[:, :, None], 3, axis=2))[0].box, FACE) > 0.85


@pytest.mark.parametrize("size", [160, 224, 320])
@pytest.mark.parametrize("corner", ["top_left", "bottom_right"])
def test_pasted_at_sizes_and_positions(detector, astronaut, size, corner):
    canvas = np.full((512, 512, 3), 90, np.uint8)
    canvas[::7] = 40  # some texture
    top, left = (10, 24) if corner == "top_left" else (512 - size - 6, 512 - size - 18)
    canvas[top : top + size, left : left + size] = np.asarray(Image.fromarray(astronaut).resize((size, size), Image.Resampling.BOX))
    expected = FACE * size / 512 + np.array([left, top, left, top])
    faces = detector.detect(canvas)
    assert faces and iou(best_match(faces, expected).box, expected) > 0.7


def test_huge_images_are_shrunk_and_boxes_mapped_back(astronaut):
    detector = make_detector("mtcnn", max_side=512)
    canvas = np.full((1300, 1100, 3), 128, np.uint8)
    canvas[300:1324, 50:1074] = np.asarray(Image.fromarray(astronaut).resize((1024, 1024)))[:1000]
    faces = detector.detect(canvas)
    expected = FACE * 2 + np.array([50, 300, 50, 300])
    face = best_match(faces, expected)
    assert iou(face.box, expected) > 0.8
    x0, y0, x1, y1 = face.box
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in face.landmarks)


def test_batch_equals_one_by_one(detector, astronaut):
    # The astronaut pads to 640×640; the blank image and the face crop (with their borders) to
    # 128×128, so they share one P-Net call. R-Net and O-Net see all three images' patches at once.
    cropped = np.ascontiguousarray(astronaut[55:160, 275:170:-1])  # 105×105, mirrored
    batch = [astronaut, np.zeros((40, 50, 3), np.uint8), cropped]
    together = detector.detect_batch(batch)
    for image, faces in zip(batch, together):
        alone = detector.detect(image)
        assert len(alone) == len(faces)
        for a, b in zip(alone, faces):
            np.testing.assert_allclose(a.box, b.box, atol=1e-2)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-2)
            assert a.score == pytest.approx(b.score, abs=1e-4)
    assert together[0] and together[2] and together[1] == [] and detector.detect_batch([]) == []


def test_same_size_image_does_not_recompile(detector, astronaut):
    detector.detect(astronaut)
    jitted = (mtcnn._pnet_pyramid, mtcnn._rnet, mtcnn._onet)
    before = [f._cache_size() for f in jitted]
    detector.detect(astronaut)
    assert [f._cache_size() for f in jitted] == before
    detector.detect(np.ascontiguousarray(astronaut[::-1, ::-1] // 2 + 60))  # another image, same size
    assert mtcnn._pnet_pyramid._cache_size() == before[0]
    assert mtcnn._rnet._cache_size() <= len(mtcnn._CHUNKS) and mtcnn._onet._cache_size() <= len(mtcnn._CHUNKS)


def test_patch_batches_cover_any_count():
    for n in range(0, 300):
        sizes = mtcnn._chunks(n)
        assert set(sizes) <= set(mtcnn._CHUNKS) and 0 <= sum(sizes) - n < min(mtcnn._CHUNKS)


def test_aligned_crop_makes_the_eyes_level(detector, astronaut):
    upright = math.degrees(eye_angle(detector.detect(astronaut)[0]))  # her head leans by ~3.5°
    tilted = np.asarray(Image.fromarray(astronaut).rotate(20, resample=Image.Resampling.BILINEAR, center=(224, 117)))
    face = best_match(detector.detect(tilted), FACE)
    assert math.degrees(eye_angle(face)) == pytest.approx(upright - 20, abs=3)
    crop = crop_face(tilted, face)
    canvas = np.full((512, 512, 3), 128, np.uint8)
    canvas[100 : 100 + crop.shape[0], 100 : 100 + crop.shape[1]] = crop
    again = max(detector.detect(canvas), key=lambda f: f.score)
    assert abs(math.degrees(eye_angle(again))) < 3


# --- crops -----------------------------------------------------------------------------------


def test_crop_without_landmarks_is_an_exact_copy_with_edges_repeated():
    image = np.arange(40 * 30 * 3, dtype=np.int64).reshape(40, 30, 3).astype(np.uint8)
    face = Face((10.0, 12.0, 20.0, 20.0))
    crop = crop_face(image, face, margin=0.0)
    np.testing.assert_array_equal(crop, image[11:21, 10:20])  # 10×10 square about the box centre
    assert crop_face(image, face, margin=0.5).shape == (20, 20, 3)
    corner = crop_face(image, Face((-4.0, -4.0, 4.0, 4.0)), margin=0.0)
    np.testing.assert_array_equal(corner[:4, :4], np.broadcast_to(image[0, 0], (4, 4, 3)))
    np.testing.assert_array_equal(corner[4:, 4:], image[:4, :4])
    gray = crop_face(image[:, :, :1], face, margin=0.0)
    assert gray.shape == (10, 10, 1)


def test_crop_align_flag_and_rotation():
    image = np.zeros((60, 60, 3), np.uint8)
    image[28:32, 10:50] = 255  # a horizontal bar
    marks = np.array([[20.0, 20.0], [40.0, 40.0], [30, 30], [25, 45], [35, 45]])  # eye line at +45°
    face = Face((10.0, 10.0, 50.0, 50.0), 1.0, marks)
    assert math.degrees(eye_angle(face)) == pytest.approx(45)
    np.testing.assert_array_equal(crop_face(image, face, align=False), crop_face(image, Face(face.box)))
    turned = crop_face(image, face, margin=0.0)
    assert turned.shape == (40, 40, 3)
    # The bar, seen in a frame turned by +45°, runs along the anti-diagonal.
    assert turned[10, 29, 0] > 200 and turned[29, 10, 0] > 200 and turned[10, 10, 0] < 50 and turned[29, 29, 0] < 50


# --- Haar and errors -------------------------------------------------------------------------


def test_haar_finds_the_astronaut(astronaut):
    faces = make_detector("haar").detect(astronaut)
    assert faces and iou(faces[0].box, FACE) > 0.6 and faces[0].landmarks is None


@pytest.mark.parametrize("name", ["mtcnn", "haar"])
def test_border_finds_a_face_filling_the_image(astronaut, name):
    x0, y0, x1, y1 = FACE.astype(int)
    tight = np.ascontiguousarray(astronaut[y0 + 15 : y1, x0 + 10 : x1 - 10])  # forehead and cheeks cut
    assert not make_detector(name, border=0.0).detect(tight)
    faces = make_detector(name).detect(tight)
    assert faces and iou(faces[0].box, FACE - np.array([x0 + 10, y0 + 15] * 2)) > 0.5


def test_missing_extra_is_one_line(monkeypatch):
    import importlib.util
    import sys

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mtcnn" else real(name, *a))
    with pytest.raises(MissingExtra, match=r"pip install 'ferjax\[predict\]'"):
        make_detector("mtcnn")
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(MissingExtra, match="predict extra"):
        make_detector("haar")


def test_bad_arguments():
    from ferjax.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown face detector 'yolo'"):
        make_detector("yolo")
    with pytest.raises(ValueError, match="min_face_size"):
        make_detector("mtcnn", min_face_size=8)
    with pytest.raises(ValueError, match="uint8"):
        make_detector("haar").detect(np.zeros((10, 10), np.uint8))
