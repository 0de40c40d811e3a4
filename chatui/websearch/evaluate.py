"""Main-text extraction quality on the hand-labelled pages (tests/websearch/data/).

Each `NAME.html` has a `NAME.expected.txt` written by hand: the text a reader would copy
as the article (in-body headings, paragraphs, list items, code; *not* the page title,
byline, navigation, banners, sidebars, comments, related links or footers).
Scores are token-level (bag of lowercase word tokens, multiset overlap) precision,
recall and F1, as in trafilatura's and most boilerplate-removal evaluations.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / "tests" / "websearch" / "data"
_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> Counter[str]:
    return Counter(_TOKEN.findall(text.lower()))


def token_prf(predicted: str, expected: str) -> tuple[float, float, float]:
    p, e = tokens(predicted), tokens(expected)
    overlap = sum((p & e).values())
    precision = overlap / sum(p.values()) if p else 0.0
    recall = overlap / sum(e.values()) if e else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def labelled_pages(data_dir: Path = DATA_DIR) -> list[tuple[str, str, str]]:
    """[(name, html, expected_text)] sorted by name."""
    out = []
    for exp in sorted(data_dir.glob("*.expected.txt")):
        name = exp.name.removesuffix(".expected.txt")
        html = data_dir / f"{name}.html"
        if html.exists():
            out.append((name, html.read_text(encoding="utf-8"), exp.read_text(encoding="utf-8")))
    return out


def extractors() -> dict[str, Callable[[str, str | None], str]]:
    from chatui.websearch.extract import (bs4_heuristic_text, bs4_plain_text,
                                          extract_main_text, trafilatura_text)
    return {"trafilatura": trafilatura_text, "bs4_heuristic": bs4_heuristic_text,
            "bs4_get_text": bs4_plain_text, "extract_main_text": extract_main_text}


def evaluate(names: list[str] | None = None, repeat: int = 1) -> dict[str, dict]:
    """Per extractor: mean precision/recall/F1 over the pages, per-page F1, pages/s."""
    pages = labelled_pages()
    results: dict[str, dict] = {}
    for ename, fn in extractors().items():
        if names and ename not in names:
            continue
        fn(pages[0][1], None)  # warm up (imports, lazy init)
        per_page, ps, rs, fs = {}, [], [], []
        t0 = time.perf_counter()
        for _ in range(repeat):
            outs = [fn(html, f"https://example.org/{name}") for name, html, _ in pages]
        elapsed = time.perf_counter() - t0
        for (name, _, exp), out in zip(pages, outs):
            p, r, f = token_prf(out, exp)
            per_page[name] = round(f, 3)
            ps.append(p)
            rs.append(r)
            fs.append(f)
        n = len(pages)
        results[ename] = {"precision": sum(ps) / n, "recall": sum(rs) / n, "f1": sum(fs) / n,
                          "pages_per_s": n * repeat / elapsed, "per_page_f1": per_page}
    return results


if __name__ == "__main__":
    for name, r in evaluate(repeat=3).items():
        print(f"{name:18} P={r['precision']:.3f} R={r['recall']:.3f} F1={r['f1']:.3f} "
              f"{r['pages_per_s']:.0f} pages/s")
        print("   ", r["per_page_f1"])
