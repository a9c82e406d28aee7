"""load_image on the shared demo photos and on generated odd formats."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import SHARED
from PIL import Image

from codi.errors import CoDiUserError
from codi.media import MediaLimits, load_image

MEDIA = SHARED / "media"


def media_file(name: str):
    path = MEDIA / name
    if not path.exists():
        pytest.skip(f"needs the real test media {path} (../shared/media is absent)")
    return path


@pytest.mark.parametrize(
    "name,size",
    [
        ("cat.jpg", (500, 523)),
        ("house.jpeg", (512, 512)),
        ("rain_on_tree.jpg", (275, 183)),
        ("van_gogh_image.jpg", (2560, 2667)),
    ],
)
def test_shared_photos(name, size):
    loaded = load_image(media_file(name))
    assert loaded.image.mode == "RGB" and loaded.image.size == size
    assert loaded.notices == []
    assert 10 < np.asarray(loaded.image).mean() < 245


def test_bytes_pil_and_array_sources():
    path = media_file("rain_on_tree.jpg")
    from_path = np.asarray(load_image(path).image)
    assert np.array_equal(np.asarray(load_image(path.read_bytes()).image), from_path)
    assert np.array_equal(np.asarray(load_image(Image.open(path)).image), from_path)
    assert np.array_equal(np.asarray(load_image(from_path).image), from_path)


def _save(tmp_path, image: Image.Image, name: str, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((80, 80, 4), np.uint8)
    rgba[:40, :, :] = (255, 0, 0, 255)  # opaque red top, fully transparent bottom
    loaded = load_image(_save(tmp_path, Image.fromarray(rgba), "a.png"))
    pixels = np.asarray(loaded.image)
    assert tuple(pixels[10, 10]) == (255, 0, 0) and tuple(pixels[70, 10]) == (255, 255, 255)
    assert any("transparent" in n for n in loaded.notices)


def test_opaque_rgba_has_no_notice(tmp_path):
    opaque = Image.new("RGBA", (80, 80), (0, 0, 255, 255))
    loaded = load_image(_save(tmp_path, opaque, "o.png"))
    assert loaded.notices == [] and tuple(np.asarray(loaded.image)[0, 0]) == (0, 0, 255)


def test_la_and_palette_transparency(tmp_path):
    la = Image.new("LA", (80, 80), (0, 0))
    assert tuple(np.asarray(load_image(_save(tmp_path, la, "la.png")).image)[5, 5]) == (
        255,
        255,
        255,
    )
    pal = Image.new("P", (80, 80), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.paste(0, (0, 0, 40, 80))
    loaded = load_image(_save(tmp_path, pal, "p.png", transparency=0))
    pixels = np.asarray(loaded.image)
    assert tuple(pixels[5, 5]) == (255, 255, 255) and tuple(pixels[5, 60]) == (10, 200, 30)


def test_sixteen_bit_png_is_scaled_not_truncated(tmp_path):
    ramp = np.linspace(0, 65535, 96 * 96).reshape(96, 96).astype(np.uint16)
    loaded = load_image(_save(tmp_path, Image.fromarray(ramp), "g16.png"))
    pixels = np.asarray(loaded.image)
    assert pixels.dtype == np.uint8 and pixels[0, 0, 0] == 0 and pixels[-1, -1, 0] == 255
    assert np.abs(pixels[..., 0].astype(float) - ramp / 257.0).max() <= 0.5 + 1e-9


def test_grayscale_cmyk_and_bilevel(tmp_path):
    gray = load_image(_save(tmp_path, Image.new("L", (70, 70), 128), "g.jpg"))
    assert gray.image.mode == "RGB" and abs(int(np.asarray(gray.image)[0, 0, 0]) - 128) <= 2
    cmyk = Image.new("CMYK", (70, 70), (0, 255, 255, 0))  # pure red in CMYK
    red = np.asarray(load_image(_save(tmp_path, cmyk, "c.jpg")).image)[35, 35]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    bilevel = load_image(_save(tmp_path, Image.new("1", (70, 70), 1), "b.png"))
    assert tuple(np.asarray(bilevel.image)[0, 0]) == (255, 255, 255)


def test_animated_gif_and_webp_use_first_frame(tmp_path):
    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    for name in ("anim.gif", "anim.webp"):
        path = _save(
            tmp_path,
            frames[0],
            name,
            save_all=True,
            append_images=frames[1:],
            duration=100,
            loop=0,
            **({"lossless": True} if name.endswith("webp") else {}),
        )
        loaded = load_image(path)
        pixel = np.asarray(loaded.image)[32, 32]
        assert pixel[0] > 240 and pixel[1] < 15, name
        assert loaded.source_info["frames"] == 3 and any("animated" in n for n in loaded.notices)


def test_exif_orientation_applied(tmp_path):
    image = Image.new("RGB", (100, 60), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 10, 10))  # white mark in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    loaded = load_image(_save(tmp_path, image, "rot.jpg", exif=exif.tobytes(), quality=95))
    assert loaded.image.size == (60, 100) and loaded.source_info["exif_orientation"] == 6
    assert np.asarray(loaded.image)[3, -3].mean() > 200  # mark moved to the top-right


def test_tiny_image_gets_a_notice_and_huge_header_is_refused(tmp_path):
    tiny = load_image(_save(tmp_path, Image.new("RGB", (1, 1), (9, 9, 9)), "tiny.png"))
    assert tiny.image.size == (1, 1) and any("small" in n for n in tiny.notices)
    with pytest.raises(CoDiUserError, match="MP"):
        load_image(
            _save(tmp_path, Image.new("L", (3000, 2000)), "big.png"),
            MediaLimits(max_image_pixels=5_000_000),
        )


def test_decompression_bomb_header_is_a_user_error(tmp_path):
    # a valid 1-bit PNG whose header claims 40000×40000 pixels (1.6 GP, above Pillow's own guard)
    bomb = Image.new("1", (40000, 40000))
    buffer = io.BytesIO()
    bomb.save(buffer, format="PNG", optimize=True)
    path = tmp_path / "bomb.png"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CoDiUserError):
        load_image(path)
    with pytest.raises(CoDiUserError):
        load_image(path, MediaLimits(max_image_pixels=10**10))


@pytest.mark.parametrize(
    "content,name", [(b"hello, I am text\n" * 20, "text.jpg"), (b"", "empty.png")]
)
def test_not_an_image(tmp_path, content, name):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CoDiUserError):
        load_image(path)


def test_truncated_jpeg_and_png(tmp_path):
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8))
    for name in ("t.jpg", "t.png"):
        data = _save(tmp_path, noisy, name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
        with pytest.raises(CoDiUserError, match="damaged|truncated|not an image"):
            load_image(tmp_path / name)


def test_missing_file_oversized_file_and_bad_array(tmp_path):
    with pytest.raises(CoDiUserError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    path = _save(tmp_path, Image.new("RGB", (64, 64)), "ok.png")
    with pytest.raises(CoDiUserError, match="MiB"):
        load_image(path, MediaLimits(max_file_bytes=10))
    with pytest.raises(CoDiUserError):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(CoDiUserError):
        load_image(12345)


def test_float_array_source_is_scaled():
    loaded = load_image(np.full((64, 64, 3), 0.5, np.float32))
    assert int(np.asarray(loaded.image)[0, 0, 0]) in (127, 128)
