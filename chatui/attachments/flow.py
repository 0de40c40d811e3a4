"""Attachments on the message path, between the handlers and the store (no Gradio here).

* `split_message`: the input's value — text, or MultimodalTextbox's {"text", "files"} — into
  (text, files);
* `Attachments.check`: every file validated and converted before anything is stored (the
  browser's validation step and the send share one result through a short-lived cache, so
  a big PDF is read once);
* `store_items`: what the store keeps of them;
* `Attachments.for_turn`: what a turn needs back from the store — the conversation's
  documents, the message's images as content parts, and the bubble that shows them.

Uploaded files are read only from Gradio's own upload folder: a client that names another
path (an API caller can send any JSON) is refused, whatever Gradio checked before.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import AttachmentError
from .docsearch import DocIndex
from .documents import DOCUMENT_SUFFIXES
from .images import IMAGE_SUFFIXES, image_part, preview
from .intake import Prepared, prepare

__all__ = ["Attachments", "TurnFiles", "split_message", "store_items", "bubble",
           "accepted_suffixes", "conversation_bubbles", "NEEDS_TEXT"]

NEEDS_TEXT = "Add a question or an instruction about the attached files."
_KIND_LABEL = {"pdf": "PDF", "docx": "Word", "html": "HTML", "markdown": "Markdown",
               "text": "text"}


def split_message(message: Any) -> tuple[Any, list]:
    """(text, files) of a message from the browser (dict) or an API client (text)."""
    if isinstance(message, dict) and ("text" in message or "files" in message):
        files = message.get("files") or []
        return message.get("text"), list(files) if isinstance(files, list | tuple) else [files]
    return message, []


def accepted_suffixes(vision: bool) -> list[str]:
    """File types the input offers: documents always, images for vision models."""
    images = [s for s in IMAGE_SUFFIXES if s not in (".svg", ".svgz", ".bmp", ".tif", ".tiff",
                                                     ".heic", ".avif", ".ico")]
    return list(DOCUMENT_SUFFIXES) + (images if vision else [])


def upload_roots() -> list[Path]:
    """Where Gradio keeps uploaded files (GRADIO_TEMP_DIR, else <tmp>/gradio)."""
    root = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
    return [Path(root).resolve()]


def _checked_path(item: Any) -> Any:
    path = item.get("path") if isinstance(item, dict) else getattr(item, "path", item)
    if isinstance(item, tuple) or path is None:
        return item  # (name, bytes) from code, not from a client
    p = Path(str(path)).resolve()
    if not any(p.is_relative_to(r) for r in upload_roots()):
        raise AttachmentError("an attached file was not uploaded through this app.")
    return item


def store_items(prepared: Prepared) -> list[dict]:
    """The store's dicts (see chatui/store/attachments.py) for validated files."""
    items = []
    for im in prepared.images:
        pmime, pbytes = preview(im)
        items.append({"kind": "image", "name": im.name, "mime": im.mime, "size": len(im.data),
                      "data": im.data, "preview": pbytes,
                      "meta": {"width": im.width, "height": im.height,
                               "preview_mime": pmime}})
    for doc, idx in prepared.documents:
        items.append({"kind": "document", "name": doc.name, "mime": doc.mime, "size": doc.size,
                      "text_index": idx.to_record(),
                      "meta": {"pages": doc.pages, "chars": doc.chars,
                               "chunks": len(idx.chunks), "doc_kind": doc.kind}})
    return items


def _alt(name: str) -> str:
    return re.sub(r"[\[\]()\\`*_<>!|#]", " ", name).strip() or "image"


def bubble(rows: list[dict]) -> str | None:
    """The user-side bubble showing a message's attachments: image previews (inline data
    URLs, sent only to the owner's browser) and one line naming the documents."""
    parts = []
    imgs = [r for r in rows if r["kind"] == "image" and r.get("preview")]
    if imgs:
        parts.append(" ".join(
            f"![{_alt(r['name'])}](data:{(r.get('meta') or {}).get('preview_mime', 'image/jpeg')}"
            f";base64,{base64.b64encode(r['preview']).decode('ascii')})" for r in imgs))
    docs = [r for r in rows if r["kind"] == "document"]
    if docs:
        names = []
        for r in docs:
            meta = r.get("meta") or {}
            what = _KIND_LABEL.get(meta.get("doc_kind"), "document")
            if meta.get("pages"):
                what += f", {meta['pages']} page{'s' if meta['pages'] != 1 else ''}"
            if meta.get("text_shared") is False:  # copied from a share link: a name only
                what += ", text not shared"
            names.append(f"`{r['name'].replace('`', '')}` ({what})")
        parts.append("Attached: " + " · ".join(names))
    return "\n\n".join(parts) or None


@dataclass
class TurnFiles:
    documents: list[DocIndex] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)  # content parts, for vision models
    bubbles: dict[str, str] = field(default_factory=dict)  # user message id -> bubble


class Attachments:
    """The settings, a store and the check cache: one per app."""

    CACHE_SECONDS = 120.0
    CACHE_SIZE = 32

    def __init__(self, settings: Any, store: Any):
        self.settings = settings  # AttachmentSettings
        self.store = store
        self._cache: OrderedDict[tuple, tuple[float, Prepared]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, files: list, *, vision: bool, model: str) -> Prepared:
        """Validated files (AttachmentError with one line on the first refusal)."""
        files = [_checked_path(f) for f in files or []]
        key = self._key(files, vision)
        if key is not None:
            with self._lock:
                hit = self._cache.get(key)
                if hit and time.monotonic() - hit[0] < self.CACHE_SECONDS:
                    return hit[1]
        prepared = prepare(files, self.settings, vision=vision, model=model)
        if key is not None:
            with self._lock:
                self._cache[key] = (time.monotonic(), prepared)
                while len(self._cache) > self.CACHE_SIZE:
                    self._cache.popitem(last=False)
        return prepared

    @staticmethod
    def _key(files: list, vision: bool) -> tuple | None:
        """Uploaded files are immutable paths in Gradio's cache: path + size + mtime."""
        key = []
        for f in files:
            path = f.get("path") if isinstance(f, dict) else getattr(f, "path", f)
            if not isinstance(path, str):
                return None
            try:
                st = os.stat(path)
            except OSError:
                return None
            name = f.get("orig_name") if isinstance(f, dict) else None
            key.append((path, name, st.st_size, st.st_mtime_ns))
        return (vision, *key)

    def for_turn(self, user_id: str, conv_id: str, message_id: str, vision: bool,
                 branch: set[str] | None = None) -> TurnFiles:
        """The documents sent on the branch being answered (``branch``: its user message
        ids; None: the whole conversation), this message's images (for a vision model), and
        the bubbles of every message with attachments. A document sent with a question that
        was since edited away or undone is not searched: it is not in the chat any more."""
        out = TurnFiles()
        rows = self.store.list_attachments(user_id, conv_id, previews=True)
        if not rows:
            return out
        by_msg: dict[str, list[dict]] = {}
        for r in rows:
            by_msg.setdefault(r["message_id"], []).append(r)
        out.bubbles = {m: b for m, rs in by_msg.items() if (b := bubble(rs))}
        on_branch = (lambda r: True) if branch is None else (
            lambda r: r["message_id"] in branch or r["message_id"] == message_id)
        if any(r["kind"] == "document" and on_branch(r) for r in rows):
            # (a document copied from a share link has no text: nothing to search)
            out.documents = [DocIndex.from_record(d["text_index"], key=d["id"])
                             for d in self.store.conversation_documents(user_id, conv_id)
                             if on_branch(d) and (d["text_index"] or {}).get("chunks")]
        if vision and any(r["kind"] == "image" and r["message_id"] == message_id
                          for r in rows):
            out.images = [image_part(f"data:{r['mime']};base64,"
                                     f"{base64.b64encode(r['data']).decode('ascii')}")
                          for r in self.store.message_images(user_id, message_id)]
        return out


def conversation_bubbles(store: Any, user_id: str, conv_id: str) -> dict[str, str]:
    """message id -> the bubble of its attachments (for the chat view)."""
    by_msg: dict[str, list[dict]] = {}
    for r in store.list_attachments(user_id, conv_id, previews=True):
        by_msg.setdefault(r["message_id"], []).append(r)
    return {m: b for m, rs in by_msg.items() if (b := bubble(rs))}
