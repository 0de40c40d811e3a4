"""Stage 4: the main text of an HTML page.

`extract_main_text(html, url=None) -> str` is the stable entry point other tooling calls.
`extract_page(html, url=None) -> Page` adds the title and the text split into sections
under their headings (used for chunking, so each passage carries its nearest heading).

Extractor choice, measured on the hand-labelled pages in tests/websearch/data/ (token
F1 of the main text, see bench/bench_websearch.py) and in line with trafilatura's own
990-page evaluation (F1 0.92 vs 0.69 for plain BeautifulSoup text): trafilatura first
(markdown output, so headings survive); when it returns nothing (tiny or odd pages) or
fails, our BeautifulSoup heuristic (`bs4_heuristic_text`); `bs4_plain_text` is only a
baseline for the benchmark. Nothing here raises on malformed HTML.
"""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser
from dataclasses import dataclass, field

from bs4 import BeautifulSoup, Comment, Tag

__all__ = ["Page", "Section", "extract_main_text", "extract_page", "extract_title",
           "trafilatura_text", "bs4_heuristic_text", "bs4_plain_text"]

log = logging.getLogger(__name__)

MAX_HTML_CHARS = 3_000_000  # a guard on parser time; fetch caps bytes well below this
# Trees deeper or larger than this get a linear flat-text extraction (all visible text;
# BM25 ranking then keeps the relevant passages). Deep trees are junk or an attack:
# trafilatura and any "text inside this subtree" heuristic go quadratic on them (2,000
# nested <article><p> took ~30 s). Very large trees are slow in every extractor here
# (~0.3-1 ms per element on this machine: 12,000 elements took 4.8 s in trafilatura,
# 2.2 s in the bs4 heuristic), while typical pages have 800-4,000 elements.
MAX_TREE_DEPTH = 100
MAX_TREE_ELEMENTS = 6_000
FAST_ABOVE_ELEMENTS = 1_500


@dataclass
class Section:
    heading: str  # nearest heading above this text ("" before the first heading)
    text: str  # paragraphs separated by blank lines


@dataclass
class Page:
    title: str
    text: str
    sections: list[Section] = field(default_factory=list)
    extractor: str = ""  # trafilatura | bs4 | none

    @property
    def headings(self) -> list[str]:
        return [s.heading for s in self.sections if s.heading]


# ---------------------------------------------------------------- title

_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_OG_RE = re.compile(
    r"""<meta[^>]+property\s*=\s*["']og:title["'][^>]*content\s*=\s*["']([^"']+)|"""
    r"""<meta[^>]+content\s*=\s*["']([^"']+)["'][^>]*property\s*=\s*["']og:title""",
    re.IGNORECASE)


def _unescape(s: str) -> str:
    import html as _html
    return " ".join(_html.unescape(re.sub(r"<[^>]+>", " ", s)).split())


def extract_title(html: str) -> str:
    head = html[:200_000]
    m = _OG_RE.search(head)
    if m:
        t = _unescape(m.group(1) or m.group(2) or "")
        if t:
            return t[:300]
    m = _TITLE_RE.search(head)
    if m:
        t = _unescape(m.group(1))
        if t:
            return t[:300]
    m = re.search(r"<h1[^>]*>(.*?)</h1\s*>", head, re.IGNORECASE | re.DOTALL)
    return _unescape(m.group(1))[:300] if m else ""


# ---------------------------------------------------------------- trafilatura

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BOLD = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
_ITAL = re.compile(r"(?<![\w*])\*(\S(?:[^*]*?\S)?)\*(?![\w*])")


def _clean_md_line(line: str) -> str:
    line = _BOLD.sub(r"\1", line)
    line = _ITAL.sub(r"\1", line)
    return line.rstrip()


def _md_to_sections(md: str) -> list[Section]:
    sections: list[Section] = []
    heading, paras, cur = "", [], []

    def flush_para():
        if cur:
            paras.append("\n".join(cur).strip())
            cur.clear()

    def flush_section():
        flush_para()
        body = "\n\n".join(p for p in paras if p)
        if body or heading:
            sections.append(Section(heading, body))
        paras.clear()

    for raw in md.splitlines():
        m = _MD_HEADING.match(raw)
        if m:
            flush_section()
            heading = _clean_md_line(m.group(2)).strip()
            continue
        line = _clean_md_line(raw)
        if not line.strip():
            flush_para()
        else:
            cur.append(line.strip() if not line.lstrip().startswith(("- ", "| ")) else line.strip())
    flush_section()
    return sections


def _sections_text(sections: list[Section]) -> str:
    parts = []
    for s in sections:
        if s.heading:
            parts.append(s.heading)
        if s.text:
            parts.append(s.text)
    return "\n\n".join(parts).strip()


def _trafilatura_sections(html: str, url: str | None, fast: bool = False) -> list[Section] | None:
    try:
        import trafilatura
    except ImportError:  # pragma: no cover - dependency missing
        return None
    try:
        md = trafilatura.extract(html, url=url, output_format="markdown", include_comments=False,
                                 include_tables=True, include_links=False, include_images=False,
                                 deduplicate=False, fast=fast)
    except Exception as e:  # lxml_html_clean missing, parser bugs, recursion on deep trees
        log.debug("trafilatura failed on %s: %s", url, e)
        return None
    if not md or not md.strip():
        return None
    return _md_to_sections(md)


def trafilatura_text(html: str, url: str | None = None) -> str:
    secs = _trafilatura_sections(html, url)
    return _sections_text(secs) if secs else ""


# ---------------------------------------------------------------- BeautifulSoup heuristic

_DROP_TAGS = ("script", "style", "noscript", "template", "svg", "canvas", "iframe", "object",
              "embed", "form", "button", "input", "select", "textarea", "nav", "footer",
              "aside", "dialog", "menu", "head", "video", "audio", "picture", "img")
_BOILER = re.compile(
    r"(?:^|[\s_-])(?:nav|navbar|navigation|menu|breadcrumbs?|sidebar|side-bar|widget|footer|"
    r"header|masthead|cookies?|consent|gdpr|banner|comments?|comment-list|disqus|replies|"
    r"share|sharing|social|related|recommended|popular|trending|promo|advert|ads?|sponsor|"
    r"newsletter|subscribe|signup|sign-up|popup|modal|overlay|toolbar|pagination|pager|tags|"
    r"author-bio|byline|meta|skip|hidden|sr-only|print-only|outbrain|taboola)(?:$|[\s_-])",
    re.IGNORECASE)
_BLOCKS = ("p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "pre", "blockquote", "td", "th",
           "dd", "dt", "figcaption")
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}


def _attr_text(el: Tag) -> str:
    attrs = el.attrs or {}
    cls = attrs.get("class") or []
    if isinstance(cls, str):
        cls = [cls]
    return " ".join([*cls, str(attrs.get("id") or ""), str(attrs.get("role") or ""),
                     str(attrs.get("aria-label") or "")])


def _soup(html: str) -> BeautifulSoup:
    try:
        return BeautifulSoup(html, "lxml")
    except Exception:
        return BeautifulSoup(html, "html.parser")


def _is_boilerplate(el: Tag) -> bool:
    if el.name in _DROP_TAGS:
        return True
    if el.name in ("html", "body", "main", "article"):
        return False
    attrs = el.attrs or {}
    role = str(attrs.get("role") or "").lower()
    style = str(attrs.get("style") or "").replace(" ", "").lower()
    return (role in ("navigation", "banner", "contentinfo", "complementary", "dialog",
                     "alertdialog", "search")
            or "display:none" in style or attrs.get("hidden") is not None
            or attrs.get("aria-hidden") == "true"
            or (el.name in ("div", "section", "ul", "ol", "header", "span", "p", "aside", "table")
                and bool(_BOILER.search(_attr_text(el)))))


def _strip_boilerplate(root: Tag) -> None:
    """Remove comments and boilerplate subtrees in one O(n) walk (no per-node ancestor
    scans: a page of 5,000 nested divs must not take seconds)."""
    doomed: list = []
    stack = [root]
    while stack:
        node = stack.pop()
        for child in node.contents:
            if isinstance(child, Comment):
                doomed.append(child)
            elif isinstance(child, Tag):
                if _is_boilerplate(child):
                    doomed.append(child)  # its subtree goes with it: do not descend
                else:
                    stack.append(child)
    for el in doomed:
        el.extract()


def _iter_blocks(root: Tag):
    """Outermost block elements in document order (a block inside a block is not
    yielded separately: li > p, blockquote > p, td > p)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node is not root and node.name in _BLOCKS:
            yield node
            continue
        stack.extend(reversed([c for c in node.contents if isinstance(c, Tag)]))


def _text_len(el: Tag) -> int:
    return sum(len(p.get_text(" ", strip=True)) for p in el.find_all("p"))


def _link_density(el: Tag) -> float:
    total = len(el.get_text(" ", strip=True)) or 1
    links = sum(len(a.get_text(" ", strip=True)) for a in el.find_all("a"))
    return links / total


def _pick_root(soup: BeautifulSoup) -> Tag:
    body = soup.body or soup
    cands = (body.find_all(["article", "main"], limit=20)
             + body.find_all(attrs={"role": "main"}, limit=5))
    cands = [c for c in cands if _text_len(c) > 200]
    if cands:
        return max(cands, key=_text_len)
    # Score containers by the paragraph text directly inside them (readability-style).
    scores: dict[int, tuple[float, Tag]] = {}
    for p in body.find_all("p"):
        n = len(p.get_text(" ", strip=True))
        if n < 25:
            continue
        for depth, anc in enumerate((p.parent, p.parent.parent if p.parent else None)):
            if isinstance(anc, Tag):
                prev = scores.get(id(anc), (0.0, anc))[0]
                scores[id(anc)] = (prev + n / (1 + depth), anc)
    if not scores:
        return body
    top = sorted(scores.values(), key=lambda x: -x[0])[:10]  # link density is O(subtree)
    return max(top, key=lambda x: x[0] * (1 - min(_link_density(x[1]), 0.9)))[1]


def _bs4_sections(html: str) -> list[Section]:
    soup = _soup(html)
    _strip_boilerplate(soup)
    root = _pick_root(soup)
    sections: list[Section] = []
    heading, paras = "", []
    for el in _iter_blocks(root):
        if el.name == "pre":
            text = el.get_text().strip("\n")
        else:
            text = " ".join(el.get_text(" ", strip=True).split())
        if not text:
            continue
        if el.name in _HEADINGS:
            if paras or heading:
                sections.append(Section(heading, "\n\n".join(paras)))
            heading, paras = text, []
            continue
        if el.name == "li" and _link_density(el) > 0.7:
            continue
        paras.append(("- " + text) if el.name == "li" else text)
    if paras or heading:
        sections.append(Section(heading, "\n\n".join(paras)))
    if not any(s.text for s in sections):  # no block elements at all: plain text
        text = "\n".join(line.strip() for line in root.get_text("\n").splitlines() if line.strip())
        sections = [Section("", text)] if text else []
    return sections


def bs4_heuristic_text(html: str, url: str | None = None) -> str:
    try:
        return _sections_text(_bs4_sections(html))
    except Exception as e:  # pragma: no cover - bs4 is very tolerant
        log.debug("bs4 heuristic failed on %s: %s", url, e)
        return ""


def bs4_plain_text(html: str, url: str | None = None) -> str:
    """Baseline: every visible string of the page (scripts and styles removed)."""
    try:
        soup = _soup(html)
        for el in soup.find_all(("script", "style", "noscript", "template")):
            el.decompose()
        return "\n".join(line.strip() for line in soup.get_text("\n").splitlines() if line.strip())
    except Exception:  # pragma: no cover
        return ""


# ---------------------------------------------------------------- pathological trees

def _parse_lxml(html: str):
    from lxml import etree

    try:
        return etree.fromstring(html, etree.HTMLParser(recover=True, remove_comments=True,
                                                       remove_pis=True))
    except (ValueError, etree.LxmlError):  # e.g. a str with an XML encoding declaration
        try:
            return etree.fromstring(html.encode("utf-8"),
                                    etree.HTMLParser(recover=True, encoding="utf-8"))
        except Exception:
            return None


def _tree_shape(root) -> tuple[int, int]:
    """(elements, max depth) in one iterative walk."""
    n = depth = 0
    stack = [(root, 1)]
    while stack:
        el, d = stack.pop()
        n += 1
        if d > depth:
            depth = d
        if n > MAX_TREE_ELEMENTS:
            break
        stack.extend((c, d + 1) for c in el)
    return n, depth


class _FlatText(HTMLParser):
    """Linear-time visible text: everything outside script/style/template."""

    _SKIP = {"script", "style", "noscript", "template", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in self._SKIP and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip and data.strip():
            self.parts.append(data.strip())


def _flat_sections(html: str) -> list[Section]:
    parser = _FlatText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # pragma: no cover - HTMLParser is very tolerant
        pass
    text = " ".join(" ".join(parser.parts).split())
    return [Section("", text[:200_000])] if text else []


# ---------------------------------------------------------------- public entry points

def extract_page(html: str, url: str | None = None) -> Page:
    """Title + main text + sections. Never raises; returns an empty Page for junk."""
    if not isinstance(html, str):
        html = html.decode("utf-8", "replace") if isinstance(html, bytes | bytearray) else ""
    html = html[:MAX_HTML_CHARS].replace("\x00", "")
    if not html.strip():
        return Page(title="", text="", sections=[], extractor="none")
    title = extract_title(html)
    root = _parse_lxml(html)
    n = 0
    if root is not None:
        n, depth = _tree_shape(root)
        if n > MAX_TREE_ELEMENTS or depth > MAX_TREE_DEPTH:
            sections = _flat_sections(html)
            return Page(title=title, text=_sections_text(sections), sections=sections,
                        extractor="flat")
    # Big trees: skip trafilatura's second-opinion extractors (halves the time, same
    # F1 on our labelled pages).
    sections = _trafilatura_sections(html, url, fast=n > FAST_ABOVE_ELEMENTS)
    extractor = "trafilatura"
    if not sections or not _sections_text(sections):
        try:
            sections = _bs4_sections(html)
        except Exception as e:  # pragma: no cover
            log.debug("bs4 failed on %s: %s", url, e)
            sections = []
        extractor = "bs4" if sections else "none"
    # Drop a leading heading that only repeats the title.
    if sections and title and sections[0].heading and not sections[0].text \
            and sections[0].heading.lower() in title.lower():
        sections = sections[1:]
    return Page(title=title, text=_sections_text(sections), sections=sections,
                extractor=extractor)


def extract_main_text(html: str, url: str | None = None) -> str:
    """The page's main text (headings and paragraphs, boilerplate removed); "" if none."""
    return extract_page(html, url).text
