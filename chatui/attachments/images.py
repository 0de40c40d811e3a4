"""Images sent to vision models: checked, then re-encoded on the server with Pillow.

What reaches the model (and the store, and other browsers through history or shared links)
is never the uploaded bytes but a fresh PNG or JPEG that Pillow drew from the decoded
pixels: no metadata (EXIF GPS position, comments), no trailing payload, no polyglot file.

Refused with one line each (`AttachmentError`): a file over the byte limit, anything Pillow
does not decode as one of the accepted formats (a script or a web page named .png), a file
whose name claims another image type than its content, SVG (a document that can run
scripts, not pixels), an image whose header declares more pixels than allowed (a
decompression bomb: checked before any pixel is decoded, and Pillow's own bomb error is
caught too), a truncated or damaged image.
"""

from __future__ import annotations

import base64
import io
import logging
import re
from dataclasses import dataclass
from pathlib import PurePath

from . import AttachmentError
from .documents import display_name

__all__ = ["ImageFile", "ImageLimits", "load_image", "looks_like_image", "IMAGE_SUFFIXES",
           "image_part"]

log = logging.getLogger(__name__)

# Suffix → the Pillow format it claims.
IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG",
                  ".webp": "WEBP", ".gif": "GIF", ".svg": "SVG", ".svgz": "SVG",
                  ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".heic": "HEIC",
                  ".avif": "AVIF", ".ico": "ICO"}
_SVG_HEAD = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*(<!DOCTYPE\s+svg|<svg)",
                       re.IGNORECASE | re.DOTALL)


@dataclass
class ImageLimits:
    max_bytes: int = 10_000_000
    max_pixels: int = 40_000_000
    max_side: int = 2048
    types: tuple[str, ...] = ("png", "jpeg", "webp", "gif")

    @classmethod
    def from_settings(cls, s) -> ImageLimits:
        return cls(s.max_image_bytes, s.max_image_pixels, s.image_max_side,
                   tuple(t.lower() for t in s.image_types))


@dataclass
class ImageFile:
    name: str
    mime: str  # image/png | image/jpeg (what it was re-encoded to)
    data: bytes
    width: int
    height: int

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def content_part(self) -> dict:
        return image_part(self.data_url)


def image_part(url: str) -> dict:
    """An OpenAI-style chat content part for one image."""
    return {"type": "image_url", "image_url": {"url": url}}


def looks_like_image(name: str, data: bytes) -> bool:
    """Whether a file should go through `load_image` (by name or by its first bytes)."""
    if PurePath(str(name).lower()).suffix in IMAGE_SUFFIXES:
        return True
    head = data[:16]
    return (head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a"))
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
            or bool(_SVG_HEAD.match(data[:512])))


def load_image(name: str, data: bytes, limits: ImageLimits | None = None) -> ImageFile:
    """The image, validated and re-encoded. Raises AttachmentError, nothing else."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    limits = limits or ImageLimits()
    shown = display_name(name)
    if not data:
        raise AttachmentError(f"{shown}: the file is empty.")
    if len(data) > limits.max_bytes:
        raise AttachmentError(f"{shown}: the image is {len(data) / 1e6:.1f} MB; images may be "
                              f"at most {limits.max_bytes / 1e6:.1f} MB.")
    claimed = IMAGE_SUFFIXES.get(PurePath(shown.lower()).suffix)
    if claimed == "SVG" or _SVG_HEAD.match(data[:512]):
        raise AttachmentError(f"{shown}: SVG images are not accepted (an SVG is a document "
                              "that can carry scripts); attach a PNG or JPEG instead.")
    formats = [t.upper() for t in limits.types]
    accepted = ", ".join(t.upper() for t in limits.types)
    try:
        im = Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError:
        raise _too_many_pixels(shown, None, limits) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise AttachmentError(f"{shown}: the file is not an image in an accepted format "
                              f"({accepted}).") from None
    try:
        fmt = (im.format or "").upper()
        if claimed and claimed != fmt:
            raise AttachmentError(f"{shown}: the name says {claimed} but the file is a {fmt} "
                                  "image; the file was refused.")
        w, h = im.size
        if w <= 0 or h <= 0:
            raise AttachmentError(f"{shown}: the image has no pixels.")
        if w * h > limits.max_pixels:
            raise _too_many_pixels(shown, (w, h), limits)
        try:
            im.seek(0)  # animations: the first frame
            im.load()
            im = ImageOps.exif_transpose(im)  # phones store rotation as metadata
        except Image.DecompressionBombError:
            raise _too_many_pixels(shown, (w, h), limits) from None
        except (OSError, ValueError, SyntaxError, EOFError) as e:
            log.info("image %r unreadable: %s", shown, e)
            raise AttachmentError(f"{shown}: the image is damaged or truncated and could not "
                                  "be read.") from None
        return _reencode(shown, im, fmt, limits)
    finally:
        im.close()


def _too_many_pixels(name: str, size: tuple[int, int] | None,
                     limits: ImageLimits) -> AttachmentError:
    dims = f" is {size[0]:,} × {size[1]:,} pixels;" if size else " declares too many pixels;"
    return AttachmentError(f"{name}:{dims} images may have at most "
                           f"{limits.max_pixels / 1e6:.0f} megapixels.")


def _reencode(name: str, im, fmt: str, limits: ImageLimits) -> ImageFile:
    from PIL import Image

    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P"
                                                    and "transparency" in im.info)
    im = im.convert("RGBA" if has_alpha else "RGB")
    if max(im.size) > limits.max_side:
        im.thumbnail((limits.max_side, limits.max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # Photos stay JPEG; drawings, screenshots and anything transparent become PNG.
    if fmt == "JPEG" or (fmt == "WEBP" and not has_alpha):
        im.save(out, format="JPEG", quality=90, optimize=True)
        mime = "image/jpeg"
    else:
        im.save(out, format="PNG", optimize=False)
        mime = "image/png"
    return ImageFile(name, mime, out.getvalue(), im.width, im.height)


PREVIEW_SIDE = 384


def preview(image: ImageFile, side: int = PREVIEW_SIDE) -> tuple[str, bytes]:
    """(mime, bytes) of a small JPEG (PNG when transparent) for the chat to show: the full
    image would be sent to the browser again with every update of the conversation."""
    from PIL import Image

    with Image.open(io.BytesIO(image.data)) as im:
        im.thumbnail((side, side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        if im.mode == "RGBA":
            im.save(out, format="PNG", optimize=True)
            return "image/png", out.getvalue()
        im.convert("RGB").save(out, format="JPEG", quality=80, optimize=True)
        return "image/jpeg", out.getvalue()
