"""Real files made on the fly for the attachment tests and bench: PDFs with known text on known
pages (reportlab writes a real text layer; pypdf encrypts), DOCX (python-docx), images (Pillow).
"""

from __future__ import annotations

import io
import random


def make_pdf(pages: list[str], *, title: str = "", scanned: bool = False) -> bytes:
    """One page per string; blank lines in a string start new paragraphs. ``scanned``: pages
    carry only a drawn picture of text-like bars, no text layer (what a scanner makes)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, pageCompression=1)
    if title:
        c.setTitle(title)
    width, height = A4
    for text in pages:
        if scanned:
            for i in range(30):
                c.rect(60, height - 80 - i * 22, 300 + (i * 37) % 180, 10, fill=1)
        else:
            y = height - 60
            c.setFont("Helvetica", 10)
            for para in text.split("\n\n"):
                for line in _wrap(para, 95):
                    c.drawString(50, y, line)
                    y -= 13
                    if y < 50:
                        break
                y -= 13
        c.showPage()
    c.save()
    return buf.getvalue()


def _wrap(text: str, width: int) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}".strip()
    if cur:
        lines.append(cur)
    return lines


def encrypt_pdf(data: bytes, user_password: str, owner_password: str = "owner") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password=owner_password,
                   algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


_WORDS = ("system data model report value table figure result method analysis process "
          "network energy market policy design sample measure control signal cost growth "
          "region period level rate factor unit account budget plan review record").split()


def filler_pages(n: int, seed: int = 7, words_per_page: int = 380) -> list[str]:
    """n pages of varied filler prose (about a dense report page each)."""
    rng = random.Random(seed)
    pages = []
    for p in range(1, n + 1):
        paras = []
        for _ in range(4):
            sent = []
            for _ in range(words_per_page // 4 // 12):
                sent.append(" ".join(rng.choice(_WORDS) for _ in range(12)).capitalize() + ".")
            paras.append(" ".join(sent))
        pages.append(f"Section {p}\n\n" + "\n\n".join(paras))
    return pages


def make_docx(blocks: list[tuple[str, str]], *, table: list[list[str]] | None = None) -> bytes:
    """blocks: ("h1"|"p", text); an optional table appended at the end."""
    import docx

    d = docx.Document()
    for kind, text in blocks:
        if kind == "h1":
            d.add_heading(text, level=1)
        else:
            d.add_paragraph(text)
    if table:
        t = d.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                t.cell(r, c).text = cell
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def make_image(fmt: str = "PNG", size: tuple[int, int] = (64, 48),
               color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def vision_app_config(upstream_url: str, extra: str = "") -> str:
    """An app config with two models over one wire-format fake: `eyes` sees images,
    `plain` does not; `extra` is more YAML at the top level."""
    return f"""
models:
  - {{name: eyes, type: openai, endpoint_url: "{upstream_url}/v1", context_length: 8192,
     vision: true}}
  - {{name: plain, type: openai, endpoint_url: "{upstream_url}/v1", context_length: 8192}}
storage:
  db_path: {{db}}
{extra}"""
