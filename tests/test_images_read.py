"""ferjax.data.images: read_image on every Pillow mode and on bad files, videos (SPEC §9)."""

import numpy as np
import pytest
from PIL import Image

from ferjax.data import images
from ferjax.errors import DataError


def gradient(h=12, w=20):
    """An RGB image whose every pixel differs, so a rotation or channel swap shows."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 12, y * 20, (x + y) * 7], axis=-1).astype(np.uint8)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.jpg", None, "no such file"),
        ("empty.jpg", b"", "cannot decode image"),
        ("notes.jpg", b"these are my notes, not a picture\n" * 20, "cannot decode image"),
        ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50, "cannot decode image"),
    ],
)
def test_bad_files_raise_one_line_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    for read in (images.read_image, lambda p: images.decode(p, channels=3)):
        with pytest.raises(DataError, match=message) as err:
            read(path)
        assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_truncated_jpeg_and_directory(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(path, quality=90)
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(DataError, match=r"cut\.jpg: cannot decode image"):
        images.read_image(path)
    with pytest.raises(DataError, match="not a regular file"):
        images.read_image(tmp_path)


def test_rgb_gray_and_bilevel(tmp_path):
    rgb = gradient()
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(images.read_image(tmp_path / "rgb.png"), rgb)
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "gray.png")
    out = images.read_image(tmp_path / "gray.png")
    assert out.shape == (12, 20, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.repeat(rgb[:, :, :1], 3, axis=2))
    Image.fromarray(rgb[:, :, 0] > 100).save(tmp_path / "bits.png")
    np.testing.assert_array_equal(images.read_image(tmp_path / "bits.png")[:, :, 1], np.where(rgb[:, :, 0] > 100, 255, 0))


def test_cmyk_tiff_reads_back_as_its_rgb(tmp_path):
    rgb = gradient()
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "print.tif")
    assert Image.open(tmp_path / "print.tif").mode == "CMYK"
    np.testing.assert_array_equal(images.read_image(tmp_path / "print.tif"), rgb)


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 3, 4), np.uint8)
    rgba[..., 0] = 200  # red-ish
    rgba[:, 0, 3], rgba[:, 1, 3], rgba[:, 2, 3] = 0, 255, 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = images.read_image(tmp_path / "a.png").astype(int)
    np.testing.assert_array_equal(out[:, 0], 255)  # transparent -> white
    np.testing.assert_array_equal(out[:, 1], [[200, 0, 0]] * 4)  # opaque -> colour
    np.testing.assert_allclose(out[:, 2], [[228, 127, 127]] * 4, atol=1)  # half -> blend
    la = np.stack([np.full((2, 2), 60, np.uint8), np.array([[0, 255], [0, 255]], np.uint8)], axis=-1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(images.read_image(tmp_path / "la.png")[:, :, 0], [[255, 60], [255, 60]])


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1000, 257 * 100], [32896, 65280, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode in ("I;16", "I")
    out = images.read_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(out[:, :, 0], [[0, 4, 100], [128, 254, 255]])
    assert (out[:, :, 0] == out[:, :, 2]).all()


def test_palette_with_and_without_transparency(tmp_path):
    rgb = gradient()
    palette = Image.fromarray(rgb).quantize(colors=16)
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(images.read_image(tmp_path / "p.png"), np.asarray(palette.convert("RGB")))
    palette.save(tmp_path / "pt.png", transparency=int(np.asarray(palette)[0, 0]))
    out = images.read_image(tmp_path / "pt.png")
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
    assert out.shape == (12, 20, 3)


def test_exif_orientation_is_applied_by_read_image_only(tmp_path):
    upright = gradient(12, 20)
    stored = np.rot90(upright)  # what a camera held sideways writes: (20, 12)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "phone.png", exif=exif.tobytes())
    np.testing.assert_array_equal(images.read_image(tmp_path / "phone.png"), upright)
    np.testing.assert_array_equal(images.decode(tmp_path / "phone.png", channels=3), stored)


def test_decode_keeps_its_size_check(tmp_path):
    Image.fromarray(gradient()).save(tmp_path / "x.png")
    assert images.decode(tmp_path / "x.png", channels=1).shape == (12, 20, 1)
    with pytest.raises(DataError, match=r"x\.png: expected a 48x48 image, got 20x12"):
        images.decode(tmp_path / "x.png", channels=1, size=(48, 48))


def test_is_video():
    assert images.is_video("clip.MP4") and images.is_video("a/b.avi") and images.is_video("x.webm")
    assert not images.is_video("face.jpg") and not images.is_video("anim.gif") and not images.is_video("mp4")


def test_read_video_frames(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for k in range(7):
        frame = np.zeros((24, 32, 3), np.uint8)
        frame[..., 2] = 30 * k  # BGR: red grows with k
        writer.write(frame)
    writer.release()
    frames = list(images.read_video_frames(path, every_nth=3))
    assert [index for index, _ in frames] == [0, 3, 6]
    for index, frame in frames:
        assert frame.shape == (24, 32, 3) and frame.dtype == np.uint8
        assert abs(int(frame[..., 0].mean()) - 30 * index) <= 4 and frame[..., 2].mean() < 5  # RGB order
    assert len(list(images.read_video_frames(path))) == 7
    (tmp_path / "junk.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 500)
    with pytest.raises(DataError, match=r"junk\.mp4: cannot decode video"):
        images.read_video_frames(tmp_path / "junk.mp4")
    with pytest.raises(DataError, match=r"gone\.mp4: no such file"):
        images.read_video_frames(tmp_path / "gone.mp4")
