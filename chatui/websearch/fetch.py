"""Stage 3: fetch the result pages, fast and safely.

* All pages are fetched concurrently with one `httpx.AsyncClient`; each page has its own
  timeout (`settings.page_timeout`) and all of them share one deadline
  (`settings.deadline`): at the deadline unfinished pages are cancelled and reported as
  `timeout` (keeping whatever HTML had already arrived).
* Bodies are streamed and reading stops at `settings.max_page_bytes` (`too_large`, the
  bytes read so far are kept). Only HTML/XHTML/plain-text responses are read; PDFs,
  images and other binaries are refused by Content-Type *and* by sniffing the first
  bytes (NUL bytes, `%PDF`, image magic numbers) -> `bad_type`.
* Redirects are followed by hand (at most `settings.max_redirects`) so that every hop
  goes through the same checks: scheme, domain allow/block lists, and the SSRF guard.

SSRF guard and DNS rebinding
----------------------------
`SsrfGuard` resolves a hostname once (getaddrinfo in a worker thread), refuses it if
*any* address is not a public unicast address (loopback, RFC 1918, link-local incl.
169.254.169.254, CGNAT 100.64/10, multicast, reserved, unspecified, and the IPv4
addresses embedded in IPv4-mapped / NAT64 / 6to4 IPv6 forms), and returns the checked
address. `PinnedTransport` then rewrites the request URL to that *IP literal* before
handing it to httpx's normal transport, keeping the original `Host` header and passing
the hostname as the TLS `sni_hostname` extension (httpcore uses it as `server_hostname`,
so certificate verification is still against the real hostname). Because httpcore is
given an IP literal it never resolves the name again: the socket goes to exactly the
address that was checked, so a DNS answer that changes between check and connect (DNS
rebinding) cannot redirect us. Keep-alive is disabled so a TLS connection made for one
hostname is never reused for another hostname that shares the IP, and the client uses
`trust_env=False` so no proxy from the environment resolves names behind our back.

Tests need loopback servers: `SsrfGuard(allow_endpoints={("127.0.0.1", port)})` lets
exactly that ip:port through while every other private address (other loopback ports,
169.254.169.254, ...) stays refused; `resolver=` lets a test map fake public hostnames.
`settings.allow_private_addresses=True` switches the guard off entirely (never in
production).
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from chatui.config import WebSearchSettings
from chatui.websearch.search import domain_allowed

__all__ = [
    "FetchResult", "SsrfGuard", "BlockedAddress", "PinnedTransport", "fetch_pages",
    "fetch_page", "make_client", "is_public_ip", "decode_html", "OK", "TIMEOUT", "TOO_LARGE",
    "BLOCKED", "BAD_TYPE", "ERROR",
]

OK, TIMEOUT, TOO_LARGE, BLOCKED, BAD_TYPE, ERROR = (
    "ok", "timeout", "too_large", "blocked", "bad_type", "error")

USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0 Safari/537.36 chatui-websearch")
_TEXT_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "application/xml",
               "text/xml")
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass
class FetchResult:
    url: str  # as requested
    status: str = ERROR  # ok | timeout | too_large | blocked | bad_type | error
    final_url: str | None = None  # after redirects
    http_status: int | None = None
    content_type: str | None = None
    html: str = ""  # decoded text ("" unless something readable arrived)
    bytes_read: int = 0
    elapsed: float = 0.0  # seconds
    redirects: int = 0
    error: str | None = None  # short reason for anything but ok

    @property
    def usable(self) -> bool:
        """Has text worth extracting (ok, truncated, or a timeout with partial HTML)."""
        return bool(self.html.strip()) and self.status in (OK, TOO_LARGE, TIMEOUT)


# ---------------------------------------------------------------- SSRF guard

class BlockedAddress(httpx.TransportError):
    """The target resolves to an address we refuse to contact (or cannot be resolved)."""


_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


def is_public_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | str) -> bool:
    """True for a globally routable unicast address we may connect to."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d
            return is_public_ip(ip.ipv4_mapped)
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not is_public_ip(embedded):
            return False
    if ip in _METADATA:
        return False
    if (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
            or ip.is_reserved or ip.is_unspecified):
        return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False
    return ip.is_global


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """getaddrinfo in the loop's default thread pool; all addresses, IPv4 first."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addrs: list[str] = []
    for family, _, _, _, sockaddr in infos:
        a = str(sockaddr[0])
        if a not in addrs:
            addrs.append(a)
    return sorted(addrs, key=lambda a: ":" in a)


class SsrfGuard:
    """Decides which (host, port) may be contacted and returns the address to pin."""

    def __init__(self, *, allow_private: bool = False,
                 allow_endpoints: Iterable[tuple[str, int]] = (),
                 resolver: Resolver | None = None):
        self.allow_private = allow_private
        self.allow_endpoints = {(str(ipaddress.ip_address(h)), int(p)) for h, p in allow_endpoints}
        self.resolver = resolver or system_resolve
        self.resolutions = 0  # for tests: how many lookups were made

    def _permitted(self, ip: str, port: int) -> bool:
        if self.allow_private or (ip, port) in self.allow_endpoints:
            return True
        return is_public_ip(ip)

    async def resolve(self, host: str, port: int) -> str:
        """The single address to connect to, or raise BlockedAddress."""
        host = host.strip("[]")
        try:
            literal = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            literal = None
        if literal is not None:
            addrs = [str(literal)]
        else:
            if not host or host.lower() in ("localhost", "localhost.localdomain") \
                    or host.lower().endswith(".localhost"):
                if not self.allow_private:
                    raise BlockedAddress(f"{host or '(empty host)'} is a local name")
            self.resolutions += 1
            try:
                addrs = await self.resolver(host, port)
            except (OSError, UnicodeError) as e:
                raise BlockedAddress(f"cannot resolve {host}: {e}") from None
            if not addrs:
                raise BlockedAddress(f"cannot resolve {host}")
        # Refuse when *any* address is private: a name mixing public and private answers
        # is not a page on the public web.
        for a in addrs:
            try:
                norm = str(ipaddress.ip_address(a.split("%", 1)[0]))
            except ValueError:
                raise BlockedAddress(f"{host} resolved to an invalid address {a!r}") from None
            if not self._permitted(norm, port):
                raise BlockedAddress(f"{host} resolves to a non-public address ({norm})")
        return str(ipaddress.ip_address(addrs[0].split("%", 1)[0]))


_SSL_CONTEXT: ssl.SSLContext | None = None


def _ssl_context() -> ssl.SSLContext:
    """One verifying SSL context per process: loading the CA bundle costs 20-400 ms, too
    much to pay on every search."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = httpx.create_ssl_context()
    return _SSL_CONTEXT


class PinnedTransport(httpx.AsyncBaseTransport):
    """Checks every request with the guard and connects to the checked IP (see module doc)."""

    def __init__(self, guard: SsrfGuard, inner: httpx.AsyncBaseTransport | None = None):
        self.guard = guard
        self.inner = inner or httpx.AsyncHTTPTransport(
            verify=_ssl_context(), retries=0,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=0))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise BlockedAddress(f"scheme {url.scheme!r} is not allowed")
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        ip = await self.guard.resolve(host, port)
        if "host" not in request.headers:
            request.headers["Host"] = url.netloc.decode("ascii")
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        request.url = url.copy_with(host=ip)
        try:
            return await self.inner.handle_async_request(request)
        finally:
            request.url = url  # callers (redirect handling, logs) see the real URL

    async def aclose(self) -> None:
        await self.inner.aclose()


def make_client(settings: WebSearchSettings, guard: SsrfGuard | None = None) -> httpx.AsyncClient:
    guard = guard or SsrfGuard(allow_private=settings.allow_private_addresses)
    t = settings.page_timeout
    return httpx.AsyncClient(
        transport=PinnedTransport(guard), trust_env=False, follow_redirects=False,
        timeout=httpx.Timeout(t, connect=min(t, 3.0)),
        headers={"User-Agent": USER_AGENT,
                 "Accept": "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.8,*/*;q=0.1",
                 "Accept-Language": "en-US,en;q=0.8"})


# ---------------------------------------------------------------- charset

_META_CHARSET = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([a-zA-Z0-9_:.\-]+)""", re.IGNORECASE)


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    name = name.strip().strip("\"'").lower()
    if name in ("iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"):
        name = "cp1252"  # what browsers do (WHATWG encoding standard)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_html(body: bytes, content_type: str | None = None) -> str:
    """Header charset -> BOM -> <meta charset>/http-equiv -> utf-8 -> cp1252 -> latin-1.
    Never raises."""
    if body.startswith(codecs.BOM_UTF8):
        return body[3:].decode("utf-8", errors="replace")
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return body.decode("utf-16", errors="replace")
    candidates = []
    if content_type:
        m = re.search(r"charset\s*=\s*([^\s;]+)", content_type, re.IGNORECASE)
        if m:
            candidates.append(_codec(m.group(1)))
    m = _META_CHARSET.search(body[:4096])
    if m:
        candidates.append(_codec(m.group(1).decode("ascii", "ignore")))
    for enc in candidates:
        if enc and not enc.startswith("utf-16"):
            try:
                return body.decode(enc)
            except (UnicodeDecodeError, LookupError):
                pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        # A body cut mid-character at the byte cap is still UTF-8.
        if e.start >= len(body) - 3 and e.reason in ("unexpected end of data",):
            return body[: e.start].decode("utf-8", errors="replace")
    try:
        return body.decode("cp1252")
    except UnicodeDecodeError:
        return body.decode("latin-1")  # maps every byte: cannot fail


# ---------------------------------------------------------------- one page

_MAGIC = (b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"PK\x03\x04", b"\x1f\x8b",
          b"RIFF", b"\x00\x00\x01\x00", b"OggS", b"ID3", b"\x7fELF", b"MZ")


def _looks_binary(head: bytes) -> bool:
    if head.startswith(_MAGIC):
        return True
    sample = head[:2048]
    # UTF-16 text has NULs too, but we decoded those by BOM; a page without BOM is binary.
    return b"\x00" in sample and not sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))


def _type_ok(content_type: str | None) -> bool:
    if not content_type:
        return True  # decided by sniffing
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime in _TEXT_TYPES or mime.endswith("+xml") and "html" in mime


async def _fetch_into(res: FetchResult, client: httpx.AsyncClient, settings: WebSearchSettings,
                      chunks: list[bytes]) -> None:
    url = res.url
    for hop in range(settings.max_redirects + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            res.status, res.error = BLOCKED, f"refused URL {url[:80]!r} (only http/https)"
            return
        if not domain_allowed(url, settings.allow_domains, settings.block_domains):
            res.status, res.error = BLOCKED, f"domain {parts.hostname} is not allowed"
            return
        res.final_url = url
        try:
            request = client.build_request("GET", url)
        except (httpx.InvalidURL, ValueError) as e:
            res.status, res.error = ERROR, f"invalid URL: {e}"
            return
        response = await client.send(request, stream=True)
        try:
            res.http_status = response.status_code
            if response.status_code in _REDIRECTS and response.headers.get("location"):
                if hop >= settings.max_redirects:
                    res.status, res.error = ERROR, f"more than {settings.max_redirects} redirects"
                    return
                url = urljoin(url, response.headers["location"].strip())
                res.redirects += 1
                continue
            if response.status_code >= 400:
                res.status, res.error = ERROR, f"HTTP {response.status_code}"
                return
            ctype = response.headers.get("content-type")
            res.content_type = ctype
            if not _type_ok(ctype):
                res.status, res.error = BAD_TYPE, f"not a web page ({ctype.split(';')[0]})"
                return
            cap = settings.max_page_bytes
            sniffed = False
            res.status = OK
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                res.bytes_read += len(chunk)
                if not sniffed and (res.bytes_read >= 512 or res.bytes_read >= cap):
                    sniffed = True
                    if _looks_binary(b"".join(chunks)[:2048]):
                        chunks.clear()
                        res.status, res.error = BAD_TYPE, "binary content"
                        return
                if res.bytes_read >= cap:
                    res.status, res.error = TOO_LARGE, f"truncated at {cap} bytes"
                    break
            if not sniffed and _looks_binary(b"".join(chunks)[:2048]):
                chunks.clear()
                res.status, res.error = BAD_TYPE, "binary content"
            return
        finally:
            await response.aclose()
    res.status, res.error = ERROR, "too many redirects"  # pragma: no cover - loop exits above


def _finish(res: FetchResult, chunks: list[bytes], cap: int) -> None:
    body = b"".join(chunks)[:cap]
    res.bytes_read = len(body) if chunks else res.bytes_read
    if body and res.status in (OK, TOO_LARGE, TIMEOUT):
        res.html = decode_html(body, res.content_type)


async def fetch_page(url: str, client: httpx.AsyncClient, settings: WebSearchSettings,
                     *, _state: tuple[FetchResult, list[bytes]] | None = None) -> FetchResult:
    """Fetch one page within `settings.page_timeout`. Never raises (except cancellation,
    in which case `_state` still holds what was read)."""
    res, chunks = _state or (FetchResult(url=url), [])
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(settings.page_timeout):
            await _fetch_into(res, client, settings, chunks)
    except TimeoutError:
        res.status, res.error = TIMEOUT, f"no complete answer within {settings.page_timeout:g} s"
    except BlockedAddress as e:
        res.status, res.error = BLOCKED, str(e)
    except httpx.TimeoutException:
        res.status, res.error = TIMEOUT, "the server is too slow"
    except httpx.HTTPError as e:
        res.status, res.error = ERROR, f"{type(e).__name__}: {e}"[:200]
    except Exception as e:  # never let one page break the search
        res.status, res.error = ERROR, f"{type(e).__name__}: {e}"[:200]
    res.elapsed = time.perf_counter() - t0
    _finish(res, chunks, settings.max_page_bytes)
    return res


async def fetch_pages(urls: list[str], settings: WebSearchSettings, *,
                      client: httpx.AsyncClient | None = None,
                      guard: SsrfGuard | None = None,
                      deadline: float | None = None,
                      on_page: Callable[[int, FetchResult], None] | None = None,
                      ) -> list[FetchResult]:
    """Fetch all `urls` concurrently; results in the same order. Never raises.

    `on_page(i, result)` is called as soon as page i completes (not for pages cut at the
    deadline), so the caller can start extracting while slower pages still load.

    Returns by `deadline` (default `settings.deadline`) seconds plus cancellation time
    (milliseconds): pages still running then are `timeout`, with any partial HTML kept.
    """
    deadline = settings.deadline if deadline is None else deadline
    t0 = time.perf_counter()
    own = client is None
    if own:
        client = make_client(settings, guard)
    states = [(FetchResult(url=u), []) for u in urls]
    tasks = [asyncio.create_task(fetch_page(u, client, settings, _state=st))
             for u, st in zip(urls, states)]
    if on_page is not None:
        def _notify(task: asyncio.Task, i: int) -> None:
            if task.cancelled() or task.exception() is not None:
                return
            try:
                on_page(i, task.result())
            except Exception:  # a caller's callback bug must not break fetching
                pass

        for i, t in enumerate(tasks):
            t.add_done_callback(lambda t, i=i: _notify(t, i))
    try:
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=deadline)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=0.2)
    finally:
        for t in tasks:  # the caller was cancelled: do not leave fetches running
            if not t.done():
                t.cancel()
        if own:
            try:
                await asyncio.wait_for(asyncio.shield(client.aclose()), 0.2)
            except (asyncio.TimeoutError, Exception):
                pass
    out = []
    now = time.perf_counter()
    for t, (res, chunks) in zip(tasks, states):
        if t.done() and not t.cancelled() and t.exception() is None:
            out.append(t.result())
            continue
        res.status = TIMEOUT
        res.error = f"stopped at the {deadline:g} s deadline"
        res.elapsed = now - t0
        _finish(res, chunks, settings.max_page_bytes)
        out.append(res)
    return out
