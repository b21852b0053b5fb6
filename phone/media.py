"""What an uploaded file is, decided by its bytes (never its name or declared type), and
images made fit to keep: pure functions over bytes (Pillow), no I/O.

* Accepted: JPEG, PNG, WebP images and PDF documents, recognised by their signature.
* Images are decoded (a file that claims to be an image but does not decode is refused),
  limited to MAX_PIXELS before decoding (decompression bombs), turned upright by their
  EXIF orientation, downscaled to MAX_SIDE_PX and re-encoded as JPEG without metadata
  (a phone photo's EXIF carries its GPS position and the device's serials); a thumbnail of
  THUMB_SIDE_PX goes with it.
* PDFs are kept as sent, after checking the header and the end-of-file marker.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageOps

MAX_UPLOAD_BYTES = 15 * 1024 * 1024
MAX_PIXELS = 50_000_000
MAX_SIDE_PX = 2048
THUMB_SIDE_PX = 256
JPEG_QUALITY = 85


class MediaError(ValueError):
    """An upload refused for what it contains (the message says why)."""


@dataclass(frozen=True, slots=True)
class Stored:
    data: bytes
    sha256: str
    content_type: str
    kind: str  # image | document
    width: int | None
    height: int | None
    thumb: bytes | None


def sniff(data: bytes) -> str | None:
    """The content type the bytes are, by signature; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def _jpeg(img: Image.Image, side: int) -> tuple[bytes, int, int]:
    img = img.copy()
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    if img.mode not in ("RGB", "L"):
        background = Image.new("RGB", img.size, "white")
        rgba = img.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        img = background
    out = io.BytesIO()
    img.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue(), img.width, img.height


def prepare(data: bytes) -> Stored:
    if not data:
        raise MediaError("the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise MediaError(f"the file is larger than {MAX_UPLOAD_BYTES} bytes")
    kind = sniff(data)
    if kind is None:
        raise MediaError("not a JPEG, PNG or WebP image or a PDF document (by its content)")
    if kind == "application/pdf":
        if b"%%EOF" not in data[-1024:]:
            raise MediaError("a truncated or malformed PDF (no end-of-file marker)")
        return Stored(data, hashlib.sha256(data).hexdigest(), kind, "document", None, None, None)
    try:
        with Image.open(io.BytesIO(data)) as probe:
            w, h = probe.size
            if w * h > MAX_PIXELS:
                raise MediaError(f"the image has more than {MAX_PIXELS} pixels")
            probe.load()
            img = ImageOps.exif_transpose(probe) or probe
            body, bw, bh = _jpeg(img, MAX_SIDE_PX)
            thumb, _, _ = _jpeg(img, THUMB_SIDE_PX)
    except MediaError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise MediaError(f"the image does not decode: {str(exc)[:120]}") from None
    return Stored(body, hashlib.sha256(body).hexdigest(), "image/jpeg", "image", bw, bh, thumb)
