"""Images: re-encoded on the server, hostile uploads refused with one line each, no vision no
images; and the exact content parts a model server receives."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import pytest
from PIL import Image

from backends.base import GenerationParams
from backends.remote import RemoteBackend
from chatui.attachments import AttachmentError
from chatui.attachments.images import ImageLimits, load_image
from chatui.attachments.intake import prepare
from chatui.chat import ChatService, TurnRequest, TurnResult
from chatui.config import AttachmentSettings, Settings
from tests.attachment_files import make_image, make_pdf


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width × height but whose data is a few bytes: what a
    decompression bomb looks like before decoding."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_a_png_is_redrawn_without_its_metadata():
    im = Image.new("RGB", (40, 30), (10, 200, 10))
    buf = io.BytesIO()
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    meta.add_text("Comment", "secret location 48.85N 2.35E")
    im.save(buf, format="PNG", pnginfo=meta)
    raw = buf.getvalue() + b"TRAILING-PAYLOAD"
    out = load_image("shot.png", raw)
    assert out.mime == "image/png" and (out.width, out.height) == (40, 30)
    assert b"secret location" not in out.data and b"TRAILING-PAYLOAD" not in out.data
    again = Image.open(io.BytesIO(out.data))
    assert again.getpixel((5, 5)) == (10, 200, 10)
    assert out.data_url.startswith("data:image/png;base64,")
    assert out.content_part() == {"type": "image_url", "image_url": {"url": out.data_url}}


def test_photos_stay_jpeg_and_big_ones_shrink_and_exif_goes():
    im = Image.new("RGB", (3000, 1500), (120, 80, 40))
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif.tobytes())
    out = load_image("photo.jpg", buf.getvalue(), ImageLimits(max_side=1024))
    assert out.mime == "image/jpeg" and max(out.width, out.height) == 1024
    assert b"CameraMaker" not in out.data


def test_transparent_gif_becomes_png_with_alpha():
    im = Image.new("P", (8, 8), 0)
    im.info["transparency"] = 0
    buf = io.BytesIO()
    im.save(buf, format="GIF", transparency=0)
    out = load_image("anim.gif", buf.getvalue())
    assert out.mime == "image/png" and Image.open(io.BytesIO(out.data)).mode == "RGBA"


SVG_SCRIPT = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">'
              b'<script>alert(document.cookie)</script><rect width="10" height="10"/></svg>')


@pytest.mark.parametrize("name,data,match", [
    ("evil.svg", SVG_SCRIPT, "SVG images are not accepted"),
    ("evil.png", SVG_SCRIPT, "SVG images are not accepted"),  # SVG wearing a .png name
    ("page.png", b"<html><script>alert(1)</script></html>", "not an image"),
    ("photo.png", make_image("JPEG"), "the name says PNG but the file is a JPEG"),
    ("bomb.png", png_header_only(8000, 8000), "8,000 × 8,000 pixels; images may have at most 40"),
    ("bomb2.png", png_header_only(30000, 30000), "too many pixels|30,000 × 30,000"),
    ("cut.png", make_image("PNG", (300, 300))[:200], "damaged or truncated|not an image"),
    ("icon.bmp", make_image("BMP"), "not an image in an accepted format"),
    ("empty.png", b"", "empty"),
])
def test_hostile_or_wrong_images_are_one_line_each(name, data, match):
    with pytest.raises(AttachmentError, match=match) as e:
        load_image(name, data)
    assert "\n" not in str(e.value) and str(e.value).startswith(name + ":")


def test_a_huge_png_file_is_refused_by_size_before_decoding():
    import os

    buf = io.BytesIO()
    Image.frombytes("RGB", (400, 400), os.urandom(400 * 400 * 3)).save(buf, format="PNG")
    assert len(buf.getvalue()) > 400_000  # noise does not compress
    with pytest.raises(AttachmentError, match=r"the image is 0\.\d MB; images may be at "
                                              r"most 0\.1 MB"):
        load_image("huge.png", buf.getvalue(), ImageLimits(max_bytes=100_000))


def test_no_vision_model_gets_no_images_and_documents_still_pass():
    s = AttachmentSettings()
    with pytest.raises(AttachmentError, match="tiny does not read images"):
        prepare([("a.png", make_image())], s, vision=False, model="tiny")
    ok = prepare([("notes.txt", b"hello world")], s, vision=False)
    assert len(ok.documents) == 1 and not ok.images


def test_one_bad_file_refuses_the_whole_message():
    s = AttachmentSettings()
    with pytest.raises(AttachmentError, match="scan.pdf"):
        prepare([("a.png", make_image()), ("scan.pdf", make_pdf([""], scanned=True))], s,
                vision=True)
    with pytest.raises(AttachmentError, match="at most 2 per message"):
        prepare([("a.png", make_image())] * 3, AttachmentSettings(max_images_per_message=2),
                vision=True)
    with pytest.raises(AttachmentError, match="at most 3"):
        prepare([("a.txt", b"x y z")], AttachmentSettings(max_documents_per_conversation=3),
                vision=True, documents_already=3)


def test_paths_as_gradio_hands_them(tmp_path):
    p = tmp_path / "pic.png"
    p.write_bytes(make_image())
    got = prepare([{"path": str(p), "orig_name": "holiday.png"}], AttachmentSettings(),
                  vision=True)
    assert got.images[0].name == "holiday.png"


async def test_the_model_server_receives_the_exact_content_parts(wire_server):
    settings = Settings.model_validate({"models": [
        {"name": "eyes", "type": "openai", "endpoint_url": wire_server.url + "/v1",
         "vision": True}]})
    backend = RemoteBackend("eyes", wire_server.url + "/v1",
                            defaults=GenerationParams(max_new_tokens=8))
    svc = ChatService(settings, {"eyes": backend})
    got = prepare([("red.png", make_image("PNG", (16, 16))),
                   ("blue.jpg", make_image("JPEG", (20, 10), (0, 0, 255)))],
                  settings.attachments, vision=True)
    req = TurnRequest(message="What colours are these?", history=[], model="eyes",
                      images=got.content_parts())
    result = TurnResult()
    [_ async for _ in svc.respond(req, result)]
    assert result.finish_reason in ("stop", "length")
    body = json.loads(wire_server.config.raw_requests[-1])
    user = body["messages"][-1]
    assert user["role"] == "user"
    assert user["content"][0] == {"type": "text", "text": "What colours are these?"}
    parts = user["content"][1:]
    assert [p["type"] for p in parts] == ["image_url", "image_url"]
    assert set(parts[0]) == {"type", "image_url"} and set(parts[0]["image_url"]) == {"url"}
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    png = base64.b64decode(parts[0]["image_url"]["url"].split(",", 1)[1])
    assert png == got.images[0].data  # the re-encoded bytes, not the upload
    assert Image.open(io.BytesIO(png)).getpixel((3, 3)) == (200, 30, 30)


@pytest.mark.parametrize("spec", [
    {"name": "x", "type": "llamacpp", "model_path": "bundled", "vision": True},
    {"name": "x", "type": "tgi", "endpoint_url": "http://h/", "route": "generate",
     "vision": True},
])
def test_vision_on_a_backend_that_cannot_send_images_is_a_config_error(spec, tmp_path):
    import yaml

    from chatui.config import ConfigError, load_settings

    cfg = tmp_path / "spaces.yaml"
    cfg.write_text(yaml.safe_dump({"models": [spec]}))
    with pytest.raises(ConfigError, match="vision: true needs type openai, vllm, or tgi"):
        load_settings(cfg, env={})
