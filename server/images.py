"""A group's avatar and header, checked and made web-ready (pure: bytes in, bytes out; Pillow does the work).

``prepare(data, kind)`` takes an uploaded file and returns the image Kith stores and serves,
or refuses it with a reason people can act on:

- only PNG, JPEG and WebP, told by decoding with those three decoders alone (never by the
  file's name or a claimed type); GIF, SVG, BMP and anything else are refused;
- at most ``MAX_BYTES`` uploaded, and at most ``MAX_PIXELS`` decoded: the pixel count is read
  from the header and checked before a pixel is decoded, so a small file that claims a huge
  canvas (a decompression bomb) costs nothing; Pillow's own ``DecompressionBombWarning``
  counts as a refusal too;
- cropped to fill like Mastodon's ``400x400#`` (avatar) and ``1500x500#`` (header): scaled
  until it covers the box, centred, the rest cut off (a smaller picture is scaled up);
- turned upright by its EXIF orientation, then re-encoded from its pixels alone, so EXIF,
  XMP, ICC profiles, comments and text chunks are all gone; an animated image keeps its
  first frame;
- written as PNG when it has transparency that is used, else as JPEG (quality 85): every
  fediverse server and browser reads both, where WebP output would have saved bytes but
  left older software without an avatar.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from server.errors import BadRequest, PayloadTooLarge

MAX_BYTES = 8 * 1024 * 1024  # as Mastodon caps an avatar or header upload
MAX_PIXELS = 7680 * 4320  # 33,177,600: Mastodon's cap on an image's pixel count
ACCEPTED = ("PNG", "JPEG", "WEBP")  # the only decoders Pillow may try
JPEG_QUALITY = 85

#: The box each kind is cropped to fill, as Mastodon does (``icon``: the avatar, ``image``: the header).
SHAPES: dict[str, tuple[int, int]] = {"icon": (400, 400), "image": (1500, 500)}
#: What people call each kind (and the CLI's and console's words for them).
LABELS: dict[str, str] = {"icon": "avatar", "image": "header"}
CONTENT_TYPES: dict[str, str] = {"PNG": "image/png", "JPEG": "image/jpeg"}
EXTENSIONS: dict[str, str] = {"image/png": "png", "image/jpeg": "jpg"}

# Formats people try that are refused by name, so the reason says what was sent. Only the
# reason reads these bytes: whether a file is accepted is decided by decoding it.
_NAMED = ((b"GIF87a", "a GIF"), (b"GIF89a", "a GIF"), (b"BM", "a BMP"), (b"II*\x00", "a TIFF"), (b"MM\x00*", "a TIFF"))
_ACCEPTED_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
_DAMAGED = "the file is not a whole image (damaged or cut short)"


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """The image as Kith stores and serves it."""

    kind: str  # icon | image
    content_type: str  # image/png | image/jpeg
    data: bytes
    width: int
    height: int
    digest: str  # SHA-256 of ``data``, hex: the content address in its URL


def _what_it_is(data: bytes) -> str:
    head = data[:1024].lstrip()
    for magic, name in _NAMED:
        if head.startswith(magic):
            return name
    if b"<svg" in head.lower() or head.startswith(b"<?xml"):
        return "an SVG"
    return "not"


def _refuse_format(data: bytes) -> BadRequest:
    if data.startswith(_ACCEPTED_MAGIC) or (data[:4], data[8:12]) == (b"RIFF", b"WEBP"):
        return BadRequest(_DAMAGED)  # one of ours by its first bytes, yet no decoder took it
    what = _what_it_is(data)
    if what == "not":
        return BadRequest("the file is not an image Kith accepts: PNG, JPEG or WebP only")
    return BadRequest(f"the file is {what} image; only PNG, JPEG and WebP are accepted")


def _open(data: bytes) -> Image.Image:
    """The image with its header read and its pixel count checked; no pixel decoded yet."""
    try:
        image = Image.open(io.BytesIO(data), formats=list(ACCEPTED))
    except UnidentifiedImageError:
        raise _refuse_format(data) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadRequest(f"the image has too many pixels (at most {MAX_PIXELS:,})") from None
    except Exception:  # hostile input: whatever a decoder trips on, the file is not a usable image
        raise BadRequest(_DAMAGED) from None
    width, height = image.size
    if width < 1 or height < 1 or width * height > MAX_PIXELS:
        raise BadRequest(f"the image is {width}×{height} pixels; at most {MAX_PIXELS:,} pixels are accepted")
    return image


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _pixels(image: Image.Image, box: tuple[int, int]) -> Image.Image:
    """The first frame, upright, decoded, as RGB or RGBA (only when some pixel is see-through)."""
    if image.format == "JPEG":
        image.draft("RGB", box)  # decode at the smallest scale that still covers the box: less memory
    image.load()  # a truncated or damaged file fails here
    upright = ImageOps.exif_transpose(image)
    if _has_transparency(upright):
        rgba = upright.convert("RGBA")
        lowest, _ = rgba.getchannel("A").getextrema()
        if lowest < 255:
            return rgba
    return upright.convert("RGB")  # CMYK, greyscale, palettes and 16-bit PNGs too


def _encode(image: Image.Image) -> tuple[str, bytes]:
    out = io.BytesIO()
    if image.mode == "RGBA":
        image.save(out, "PNG", optimize=True)
        return CONTENT_TYPES["PNG"], out.getvalue()
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return CONTENT_TYPES["JPEG"], out.getvalue()


def prepare(data: bytes, kind: str) -> PreparedImage:
    """``data`` as the group's ``kind`` (``icon`` or ``image``), cropped, re-encoded and hashed;
    ``BadRequest`` (``PayloadTooLarge`` for a file over ``MAX_BYTES``) with the reason otherwise.

    CPU-bound (tens of milliseconds for a large photo): callers in the event loop run it in a thread.
    """
    if kind not in SHAPES:
        raise BadRequest(f"unknown image kind {kind!r}")
    if len(data) > MAX_BYTES:
        raise PayloadTooLarge(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    if not data:
        raise BadRequest("the file is empty")
    box = SHAPES[kind]
    # Pillow warns (rather than refuses) between its own limit and twice that; here a warning
    # is a refusal. ``_open`` has a lower cap of its own, so this is a second line only (the
    # filter list is process-wide: two uploads at once may see each other's filter, the same one).
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with _open(data) as image:
            try:
                pixels = _pixels(image, box)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise BadRequest(f"the image has too many pixels (at most {MAX_PIXELS:,})") from None
            except Exception:  # as in _open: a decoder's failure on hostile input is a refusal, not a 500
                raise BadRequest(_DAMAGED) from None
    fitted = ImageOps.fit(pixels, box, method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    # A new image from the pixels alone: Pillow carries ``info`` (a JPEG comment, an ICC profile)
    # through convert and resize, and its encoders write some of it back unless it is gone.
    fitted = Image.frombytes(fitted.mode, fitted.size, fitted.tobytes())
    content_type, encoded = _encode(fitted)
    return PreparedImage(
        kind=kind,
        content_type=content_type,
        data=encoded,
        width=fitted.width,
        height=fitted.height,
        digest=hashlib.sha256(encoded).hexdigest(),
    )
