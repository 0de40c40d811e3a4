"""A message's files → validated images and extracted documents, all or nothing.

`prepare(files, settings, vision=…, documents_already=…)` reads every file before anything
is stored: one refused file refuses the message (with that file's one-line reason), so a
conversation never holds half of what the user sent. Files are (name, bytes) pairs, or
paths (what Gradio hands a handler), read here with the size limit applied before reading.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from . import AttachmentError
from .docsearch import DocIndex, index_document
from .documents import (DOCUMENT_SUFFIXES, Document, DocumentLimits, display_name,
                        extract_document)
from .images import ImageFile, ImageLimits, load_image, looks_like_image

__all__ = ["Prepared", "prepare", "read_file", "NO_VISION"]

NO_VISION = ("{model} does not read images. Pick a model that does (its menu entry says "
             "“sees images”) or send the message without them.")


@dataclass
class Prepared:
    images: list[ImageFile] = field(default_factory=list)
    documents: list[tuple[Document, DocIndex]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.images or self.documents)

    def content_parts(self) -> list[dict]:
        return [im.content_part() for im in self.images]


def read_file(item: Any, max_bytes: int) -> tuple[str, bytes]:
    """(name, bytes) from a (name, bytes) pair, a path, or a dict/object with a path."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes | bytearray):
        return str(item[0]), bytes(item[1])
    path = item
    name = None
    if isinstance(item, dict):
        path, name = item.get("path"), item.get("orig_name") or item.get("name")
    elif hasattr(item, "path"):
        path, name = item.path, getattr(item, "orig_name", None)
    if not path:
        raise AttachmentError("an attached file could not be read.")
    p = Path(str(path))
    name = name or p.name
    try:
        size = os.path.getsize(p)
        if size > max_bytes:  # refuse before reading it into memory
            raise AttachmentError(f"{display_name(name)}: the file is {size / 1e6:.1f} MB; "
                                  f"files may be at most {max_bytes / 1e6:.1f} MB.")
        return str(name), p.read_bytes()
    except OSError:
        raise AttachmentError(f"{display_name(name)}: the file could not be read.") from None


def prepare(files: list[Any], settings: Any, *, vision: bool, model: str = "this model",
            documents_already: int = 0) -> Prepared:
    """Validate and convert every file; AttachmentError on the first refusal."""
    files = list(files or [])
    if not files:
        return Prepared()
    if not settings.enabled:
        raise AttachmentError("Attachments are turned off on this server.")
    if len(files) > settings.max_files_per_message:
        raise AttachmentError(f"{len(files)} files attached; at most "
                              f"{settings.max_files_per_message} per message.")
    ilimits = ImageLimits.from_settings(settings)
    dlimits = DocumentLimits.from_settings(settings)
    largest = max(ilimits.max_bytes, dlimits.max_bytes)
    out = Prepared()
    for item in files:
        name, data = read_file(item, largest)
        suffix = PurePath(name.lower()).suffix
        if suffix not in DOCUMENT_SUFFIXES and looks_like_image(name, data):
            if not vision:
                raise AttachmentError(NO_VISION.format(model=model))
            out.images.append(load_image(name, data, ilimits))
        else:
            doc = extract_document(name, data, dlimits)
            out.documents.append((doc, index_document(doc, settings.chunk_chars)))
    if len(out.images) > settings.max_images_per_message:
        raise AttachmentError(f"{len(out.images)} images attached; at most "
                              f"{settings.max_images_per_message} per message.")
    total_docs = documents_already + len(out.documents)
    if out.documents and total_docs > settings.max_documents_per_conversation:
        raise AttachmentError(f"This conversation would hold {total_docs} documents; at most "
                              f"{settings.max_documents_per_conversation}. Start a new "
                              "conversation for more.")
    return out
