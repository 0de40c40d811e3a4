"""Text out of an attached document, with the page each piece came from.

`extract_document(name, data, limits) -> Document` reads PDF (pypdf), DOCX (python-docx),
HTML (the web search's extractor, so a saved page reads like a fetched one), Markdown and
plain text. The kind is decided from the bytes as well as the name: a file whose name and
content disagree is refused rather than fed to the wrong parser.

Every refusal is an `AttachmentError` with one line for the user (a scanned PDF without a
text layer, a password-protected PDF, a corrupt file, a file over the limits). Parser
exceptions never escape: a malformed file must not take a request down with it.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePath

from chatui.websearch.extract import Section

from . import AttachmentError

__all__ = ["DocPart", "Document", "DocumentLimits", "extract_document", "document_kind",
           "DOCUMENT_SUFFIXES"]

log = logging.getLogger(__name__)

PDF, DOCX, HTML, MARKDOWN, TEXT = "pdf", "docx", "html", "markdown", "text"
DOCUMENT_SUFFIXES = {".pdf": PDF, ".docx": DOCX, ".html": HTML, ".htm": HTML,
                     ".md": MARKDOWN, ".markdown": MARKDOWN, ".txt": TEXT, ".text": TEXT}
MIME = {PDF: "application/pdf",
        DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        HTML: "text/html", MARKDOWN: "text/markdown", TEXT: "text/plain"}
# A DOCX is a zip: its parts are inflated in memory, so their declared sizes are checked
# first (a few kB of zip can declare gigabytes).
MAX_DOCX_UNZIPPED = 100_000_000


@dataclass
class DocumentLimits:
    max_bytes: int = 20_000_000
    max_pages: int = 500
    max_chars: int = 3_000_000

    @classmethod
    def from_settings(cls, s) -> DocumentLimits:
        return cls(s.max_document_bytes, s.max_pdf_pages, s.max_document_chars)


@dataclass
class DocPart:
    """Text of one page (PDF) or of the whole file (page None), split under its headings."""
    page: int | None
    sections: list[Section]


@dataclass
class Document:
    name: str
    kind: str  # pdf | docx | html | markdown | text
    parts: list[DocPart] = field(default_factory=list)
    pages: int | None = None  # PDF page count
    title: str = ""  # the document's own title when it has one (HTML <title>, PDF metadata)
    size: int = 0  # bytes of the file as uploaded

    @property
    def mime(self) -> str:
        return MIME[self.kind]

    @property
    def chars(self) -> int:
        return sum(len(s.text) + len(s.heading) for p in self.parts for s in p.sections)

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for p in self.parts for s in p.sections if s.text)


def display_name(name: str) -> str:
    """The file's base name without folders or control characters, at most 120 chars."""
    base = PurePath(str(name or "").replace("\\", "/")).name
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip() or "document"
    return base if len(base) <= 120 else base[:80] + "…" + base[-39:]


def document_kind(name: str, data: bytes) -> str:
    """The parser for these bytes, from the suffix checked against the content."""
    name = display_name(name)
    suffix = PurePath(name.lower()).suffix
    kind = DOCUMENT_SUFFIXES.get(suffix)
    if kind is None:
        raise AttachmentError(f"{name}: this type of file is not supported (attach PDF, DOCX, "
                              "HTML, Markdown or plain text).")
    head = data[:1024]
    is_pdf = b"%PDF-" in head
    is_zip = data[:4] == b"PK\x03\x04"
    if kind == PDF and not is_pdf:
        raise AttachmentError(f"{name}: the file is not a PDF, whatever its name says.")
    if kind == DOCX and not is_zip:
        raise AttachmentError(f"{name}: the file is not a Word (.docx) document, whatever its "
                              "name says.")
    utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff")
    if kind in (HTML, MARKDOWN, TEXT) and (is_pdf or is_zip
                                           or (b"\x00" in data[:8192] and not utf16)):
        raise AttachmentError(f"{name}: the file is not text, whatever its name says.")
    return kind


def extract_document(name: str, data: bytes, limits: DocumentLimits | None = None) -> Document:
    """The document's text in parts (pages for a PDF). Raises AttachmentError, nothing else."""
    limits = limits or DocumentLimits()
    shown = display_name(name)
    if not data:
        raise AttachmentError(f"{shown}: the file is empty.")
    if len(data) > limits.max_bytes:
        raise AttachmentError(f"{shown}: the file is {_mb(len(data))}; documents may be at most "
                              f"{_mb(limits.max_bytes)}.")
    kind = document_kind(shown, data)
    try:
        doc = _READERS[kind](shown, data, limits)
    except AttachmentError:
        raise
    except Exception as e:  # any parser failure on a malformed file
        log.info("document %r (%s) unreadable: %s: %s", shown, kind, type(e).__name__, e)
        raise AttachmentError(f"{shown}: the file is damaged or not a valid "
                              f"{_KIND_NAMES[kind]} and could not be read.") from None
    doc.size = len(data)
    doc.parts = [p for p in doc.parts if any(s.text.strip() or s.heading for s in p.sections)]
    if not doc.parts:
        if kind == PDF:
            raise AttachmentError(f"{shown}: the PDF has no text layer (a scanned document?); "
                                  "its text cannot be read without OCR.")
        raise AttachmentError(f"{shown}: the file contains no text.")
    if doc.chars > limits.max_chars:
        raise AttachmentError(f"{shown}: the text is {doc.chars:,} characters; documents may "
                              f"hold at most {limits.max_chars:,}.")
    return doc


_KIND_NAMES = {PDF: "PDF", DOCX: "Word document", HTML: "HTML file", MARKDOWN: "Markdown file",
               TEXT: "text file"}


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


# ---------------------------------------------------------------- PDF

def _read_pdf(name: str, data: bytes, limits: DocumentLimits) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        # Many PDFs are "encrypted" only to restrict printing, with an empty user password:
        # those open; a real password cannot be asked for here.
        try:
            ok = reader.decrypt("")
        except Exception:
            ok = 0
        if not ok:
            raise AttachmentError(f"{name}: the PDF is password-protected; remove the password "
                                  "and attach it again.")
    try:
        n = len(reader.pages)
    except FileNotDecryptedError:
        raise AttachmentError(f"{name}: the PDF is password-protected; remove the password "
                              "and attach it again.") from None
    if n > limits.max_pages:
        raise AttachmentError(f"{name}: the PDF has {n} pages; documents may have at most "
                              f"{limits.max_pages}.")
    parts, total = [], 0
    for i, page in enumerate(reader.pages, 1):
        text = _clean_pdf_text(page.extract_text() or "")
        total += len(text)
        if total > limits.max_chars:
            raise AttachmentError(f"{name}: the text is over {limits.max_chars:,} characters; "
                                  "documents may hold at most that.")
        parts.append(DocPart(i, [Section("", text)] if text else []))
    title = ""
    try:
        title = str((reader.metadata or {}).get("/Title") or "").strip()[:200]
    except Exception:
        pass
    return Document(name, PDF, parts, pages=n, title=title)


_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_SPACES = re.compile(r"[ \t\u00a0]+")


def _clean_pdf_text(text: str) -> str:
    """pypdf gives one line per text line: rejoin words hyphenated across lines and keep
    blank lines as paragraph breaks (the chunker cuts at them)."""
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    lines = [_SPACES.sub(" ", ln).strip() for ln in text.split("\n")]
    out, para = [], []
    for ln in lines:
        if ln:
            para.append(ln)
        elif para:
            out.append(" ".join(para))
            para = []
    if para:
        out.append(" ".join(para))
    return "\n\n".join(out).strip()


# ---------------------------------------------------------------- DOCX

def _read_docx(name: str, data: bytes, limits: DocumentLimits) -> Document:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        if sum(i.file_size for i in z.infolist()) > MAX_DOCX_UNZIPPED:
            raise AttachmentError(f"{name}: the document unpacks to more than "
                                  f"{_mb(MAX_DOCX_UNZIPPED)}; it is refused.")
        if "word/document.xml" not in z.namelist():
            raise AttachmentError(f"{name}: the file is not a Word (.docx) document.")
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    d = docx.Document(io.BytesIO(data))
    sections: list[Section] = []
    heading, paras = "", []

    def flush():
        if paras or heading:
            sections.append(Section(heading, "\n\n".join(paras)))

    # Body order matters (a table under its heading), so walk the body's children.
    for block in d.iter_inner_content():
        if isinstance(block, Paragraph):
            text = block.text.strip()
            style = (block.style.name if block.style is not None else "") or ""
            if text and (style.startswith("Heading") or style == "Title"):
                flush()
                heading, paras = text[:300], []
            elif text:
                paras.append(text)
        elif isinstance(block, Table):
            rows = []
            for row in block.rows:
                cells = [c.text.strip() for c in row.cells]
                if any(cells):
                    rows.append(" | ".join(cells))
            if rows:
                paras.append("\n".join(rows))
    flush()
    title = (d.core_properties.title or "").strip()[:200]
    return Document(name, DOCX, [DocPart(None, sections)], title=title)


# ---------------------------------------------------------------- HTML, Markdown, text

def _decode(data: bytes) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:  # older editors on Windows
        return data.decode("cp1252", errors="replace")


def _read_html(name: str, data: bytes, limits: DocumentLimits) -> Document:
    from chatui.websearch.extract import extract_page

    page = extract_page(_decode(data))
    return Document(name, HTML, [DocPart(None, page.sections)], title=page.title)


def _read_markdown(name: str, data: bytes, limits: DocumentLimits) -> Document:
    from chatui.websearch.extract import _md_to_sections

    return Document(name, MARKDOWN, [DocPart(None, _md_to_sections(_decode(data)))])


def _read_text(name: str, data: bytes, limits: DocumentLimits) -> Document:
    text = _decode(data).replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return Document(name, TEXT, [DocPart(None, [Section("", text.strip())])])


_READERS = {PDF: _read_pdf, DOCX: _read_docx, HTML: _read_html, MARKDOWN: _read_markdown,
            TEXT: _read_text}
