"""Mailpit's attachment thumbnail: a 180×120 JPEG of an image, or a blank one.

As Mailpit draws it: the image turned upright by its EXIF orientation; when it is smaller than
180×120 in either dimension it is scaled down to fit inside (never up), otherwise scaled and
cropped around its centre to fill 180×120; then laid centred on a white 180×120 canvas (so
transparency shows white) and encoded as JPEG at quality 70. A part that is not an image, or
cannot be decoded, gets the blank white thumbnail.

Decoding is bounded: only `FORMATS` are read, at most `BYTE_LIMIT` bytes of input and
`PIXEL_LIMIT` pixels (checked from the image's header, before any pixel is decoded); a JPEG is
decoded at the smallest scale that still covers the thumbnail. CPU work: callers run it in a
thread.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

WIDTH = 180
HEIGHT = 120
QUALITY = 70
BYTE_LIMIT = 32 * 1024 * 1024
PIXEL_LIMIT = 40_000_000
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")
WHITE = (255, 255, 255)


def thumbnail(data: bytes, content_type: str) -> bytes:
    """The JPEG thumbnail of an attachment; never raises."""
    if not content_type.startswith("image/") or len(data) > BYTE_LIMIT:
        return blank()
    try:
        picture = _decode(data)
    except (
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ):
        return blank()
    if picture is None:
        return blank()
    if picture.width < WIDTH or picture.height < HEIGHT:
        fitted = picture.copy()
        fitted.thumbnail((WIDTH, HEIGHT), Image.Resampling.LANCZOS)
    else:
        fitted = ImageOps.fit(picture, (WIDTH, HEIGHT), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (WIDTH, HEIGHT), (*WHITE, 255))
    offset = ((WIDTH - fitted.width) // 2, (HEIGHT - fitted.height) // 2)
    canvas.alpha_composite(fitted, offset)
    return _jpeg(canvas.convert("RGB"))


def blank() -> bytes:
    return _jpeg(Image.new("RGB", (WIDTH, HEIGHT), WHITE))


def _decode(data: bytes) -> Image.Image | None:
    with Image.open(io.BytesIO(data), formats=FORMATS) as image:
        if image.width * image.height > PIXEL_LIMIT or not image.width or not image.height:
            return None
        if image.format == "JPEG":  # square: still covers the thumbnail once turned upright
            image.draft("RGB", (WIDTH, WIDTH))
        image.load()
        upright = ImageOps.exif_transpose(image)
        return upright.convert("RGBA")


def _jpeg(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=QUALITY)
    return out.getvalue()
