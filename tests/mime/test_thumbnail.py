"""Mailpit's 180×120 JPEG thumbnails, and what decoding may cost."""

from __future__ import annotations

import io
import struct
import time
import zlib

from PIL import Image

from mxrelay.mime.thumbnail import HEIGHT, WIDTH, blank, thumbnail


def encoded(picture: Image.Image, kind: str) -> bytes:
    out = io.BytesIO()
    picture.save(out, kind)
    return out.getvalue()


def opened(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    assert (picture.format, picture.size) == ("JPEG", (WIDTH, HEIGHT))
    return picture.convert("RGB")


def near(pixel: object, expected: tuple[int, int, int]) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= 12 for a, b in zip(pixel, expected, strict=False))


def test_a_large_image_fills_the_thumbnail() -> None:
    picture = Image.new("RGB", (600, 300), (200, 30, 30))
    result = opened(thumbnail(encoded(picture, "PNG"), "image/png"))
    assert near(result.getpixel((0, 0)), (200, 30, 30))  # cropped to fill: no white margin
    assert near(result.getpixel((WIDTH - 1, HEIGHT - 1)), (200, 30, 30))


def test_a_small_image_is_centred_on_white_and_never_scaled_up() -> None:
    picture = Image.new("RGB", (40, 30), (0, 0, 255))
    result = opened(thumbnail(encoded(picture, "GIF"), "image/gif"))
    assert near(result.getpixel((WIDTH // 2, HEIGHT // 2)), (0, 0, 255))
    assert near(result.getpixel((5, 5)), (255, 255, 255))
    assert near(result.getpixel((WIDTH // 2 - 25, HEIGHT // 2)), (255, 255, 255))


def test_transparency_shows_white_and_exif_orientation_is_applied() -> None:
    clear = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    assert near(
        opened(thumbnail(encoded(clear, "PNG"), "image/png")).getpixel((90, 60)), (255, 255, 255)
    )
    tall = Image.new("RGB", (100, 400), (0, 150, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: shown 400 wide, 100 high
    out = io.BytesIO()
    tall.save(out, "JPEG", exif=exif)
    result = opened(thumbnail(out.getvalue(), "image/jpeg"))
    assert near(result.getpixel((WIDTH // 2, HEIGHT // 2)), (0, 150, 0))
    assert near(result.getpixel((WIDTH // 2, 5)), (255, 255, 255))  # wide: white above


def test_not_an_image_gets_the_blank_thumbnail() -> None:
    assert thumbnail(b"%PDF-1.4", "application/pdf") == blank()
    assert thumbnail(b"not a png", "image/png") == blank()
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"/>'
    assert thumbnail(svg, "image/svg+xml") == blank()
    assert opened(blank()).getpixel((0, 0)) == (255, 255, 255)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size its data never holds (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def test_a_bomb_is_refused_from_its_header() -> None:
    started = time.monotonic()
    assert thumbnail(png_claiming(100_000, 100_000), "image/png") == blank()
    assert thumbnail(png_claiming(10_000, 5_000), "image/png") == blank()
    assert time.monotonic() - started < 2
