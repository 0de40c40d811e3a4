"""Fetcher against real loopback servers: SSRF guard on every hop, deadline, caps, types."""

from __future__ import annotations

import time

import pytest

from chatui.websearch.fetch import (BAD_TYPE, BLOCKED, ERROR, OK, TIMEOUT, TOO_LARGE,
                                    BlockedAddress, SsrfGuard, decode_html, fetch_pages,
                                    is_public_ip)

from .conftest import EVIL_HOST, PUBLIC_HOST


@pytest.mark.parametrize("addr", [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
    "169.254.1.1", "100.64.0.1", "100.127.255.254", "0.0.0.0", "224.0.0.1", "240.0.0.1",
    "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::1", "198.18.0.1", "192.0.2.1",
])
def test_non_public_addresses_are_refused(addr):
    assert not is_public_ip(addr)


@pytest.mark.parametrize("addr", ["93.184.215.14", "1.1.1.1", "8.8.8.8", "2606:4700:4700::1111",
                                  "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(addr):
    assert is_public_ip(addr)


async def test_guard_resolves_and_checks(resolver):
    g = SsrfGuard(resolver=resolver)
    assert await g.resolve("public.example", 443) == "93.184.215.14"
    for host in ("mixed.example", "v6mapped.example", "cgnat.example", EVIL_HOST, "localhost",
                 "127.0.0.1", "[::1]", "nosuch.example"):
        with pytest.raises(BlockedAddress):
            await g.resolve(host, 80)
    # exemptions are exact ip:port pairs
    g2 = SsrfGuard(resolver=resolver, allow_endpoints={("127.0.0.1", 8000)})
    assert await g2.resolve("127.0.0.1", 8000) == "127.0.0.1"
    with pytest.raises(BlockedAddress):
        await g2.resolve("127.0.0.1", 8001)
    with pytest.raises(BlockedAddress):
        await g2.resolve("169.254.169.254", 8000)


async def test_default_guard_refuses_real_loopback(site, trap, settings):
    """No resolver injected, no exemption: the real servers on 127.0.0.1 are off limits."""
    urls = [f"http://127.0.0.1:{trap.port}/x", f"http://localhost:{trap.port}/x",
            f"http://[::1]:{trap.port}/x", f"http://2130706433:{trap.port}/x"]
    res = await fetch_pages(urls, settings)
    assert [r.status for r in res] == [BLOCKED] * 4, [(r.status, r.error) for r in res]
    assert trap.hits == []


async def test_fetch_ok_and_pinned_to_checked_address(site, guard, resolver, settings):
    """news.example does not exist in real DNS: success proves the socket went to the
    address our resolver returned and checked (pinned), with the original Host header."""
    res = await fetch_pages([f"{site.base}/page/wiki_axolotl"], settings, guard=guard)
    r = res[0]
    assert r.status == OK, r.error
    assert "axolotl" in r.html.lower() and r.http_status == 200
    assert resolver.calls == [PUBLIC_HOST]
    assert ("/page/wiki_axolotl", f"{PUBLIC_HOST}:{site.port}") in site.hits


@pytest.mark.parametrize("path", ["/to-loopback", "/to-localhost", "/to-evil-name", "/to-metadata"])
async def test_redirect_to_private_address_is_blocked(site, trap, guard, settings, path):
    t0 = time.perf_counter()
    (r,) = await fetch_pages([site.base + path], settings, guard=guard)
    assert r.status == BLOCKED, (r.status, r.error)
    assert r.redirects == 1 and r.html == ""
    assert trap.hits == []  # the private service never saw a connection
    assert time.perf_counter() - t0 < 1.5  # refused before any connect (169.254.x would hang)


async def test_redirect_to_other_scheme_blocked(site, guard, settings):
    (r,) = await fetch_pages([site.base + "/to-file"], settings, guard=guard)
    assert r.status == BLOCKED and "http" in r.error


async def test_allowed_redirect_followed(site, guard, settings):
    (r,) = await fetch_pages([site.base + "/hop"], settings, guard=guard)
    assert r.status == OK and r.redirects == 1
    assert r.final_url.endswith("/page/wiki_axolotl") and "Reproduction" in r.html


async def test_redirect_loop_stops(site, guard, settings):
    before = len([h for h in site.hits if h[0].startswith("/loop")])
    (r,) = await fetch_pages([site.base + "/loop-a"], settings, guard=guard)
    assert r.status == ERROR and "redirect" in r.error
    hops = len([h for h in site.hits if h[0].startswith("/loop")]) - before
    assert hops == settings.max_redirects + 1


async def test_block_list_applies_to_redirect_hops(site, guard, resolver, settings):
    (r,) = await fetch_pages([site.base + "/to-other-host"], settings, guard=guard)
    assert r.status == OK and r.final_url.startswith("http://sub.blocked.example")
    resolver.calls.clear()
    s = settings.model_copy(update={"block_domains": ["blocked.example"]})
    (r,) = await fetch_pages([site.base + "/to-other-host"], s, guard=guard)
    assert r.status == BLOCKED and "sub.blocked.example" in r.error
    assert resolver.calls == [PUBLIC_HOST]  # the blocked host was not even resolved
    s = settings.model_copy(update={"allow_domains": ["news.example"]})
    (r,) = await fetch_pages([site.base + "/to-other-host"], s, guard=guard)
    assert r.status == BLOCKED


async def test_big_page_is_capped(site, guard, settings):
    t0 = time.perf_counter()
    (r,) = await fetch_pages([site.base + "/big"], settings, guard=guard)
    assert r.status == TOO_LARGE and r.usable
    assert r.bytes_read == settings.max_page_bytes
    assert len(r.html) <= settings.max_page_bytes and r.html.startswith("<html>")
    assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize("path", ["/image.png", "/doc.pdf", "/disguised"])
async def test_binary_content_skipped(site, guard, settings, path):
    (r,) = await fetch_pages([site.base + path], settings, guard=guard)
    assert r.status == BAD_TYPE and r.html == "" and not r.usable


async def test_plain_text_and_http_errors(site, guard, settings):
    plain, missing = await fetch_pages([site.base + "/plain", site.base + "/notfound"],
                                       settings, guard=guard)
    assert plain.status == OK and "sourdough" in plain.html
    assert missing.status == ERROR and missing.http_status == 404 and not missing.usable


async def test_deadline_holds_with_hanging_pages(site, guard, settings):
    s = settings.model_copy(update={"deadline": 1.0, "page_timeout": 5.0})
    urls = [site.base + "/hang", site.base + "/hang-partial", site.base + "/page/science_bees"]
    t0 = time.perf_counter()
    hang, partial, ok = await fetch_pages(urls, s, guard=guard)
    took = time.perf_counter() - t0
    assert took <= s.deadline + 0.15, took
    assert hang.status == TIMEOUT and not hang.usable
    assert partial.status == TIMEOUT and partial.usable and "zebras" in partial.html
    assert ok.status == OK


async def test_page_timeout_shorter_than_deadline(site, guard, settings):
    s = settings.model_copy(update={"deadline": 5.0, "page_timeout": 0.5})
    t0 = time.perf_counter()
    (r,) = await fetch_pages([site.base + "/hang"], s, guard=guard)
    assert r.status == TIMEOUT and time.perf_counter() - t0 < 1.0


async def test_connection_refused_is_an_error_not_an_exception(settings):
    s = settings.model_copy(update={"allow_private_addresses": True})
    (r,) = await fetch_pages(["http://127.0.0.1:1/"], s)  # nothing listens on port 1
    assert r.status == ERROR and r.error


async def test_latin1_page_without_charset(site, guard, settings):
    (r,) = await fetch_pages([site.base + "/latin1"], settings, guard=guard)
    assert r.status == OK and "Crème brûlée" in r.html and "caramélisé" in r.html


def test_decode_html_charset_order():
    body = '<meta charset="windows-1251"><p>Привет</p>'.encode("cp1251")
    assert "Привет" in decode_html(body, "text/html")
    assert "Привет" in decode_html("<p>Привет</p>".encode("koi8-r"), "text/html; charset=KOI8-R")
    assert decode_html("é".encode("utf-8"), None) == "é"
    assert decode_html("<p>œuvre – 5 €</p>".encode("cp1252"), "text/html") == "<p>œuvre – 5 €</p>"
    assert decode_html(b"caf\xe9 \x81\x8d", None).startswith("café")  # cp1252 gaps -> latin-1
    assert decode_html("ab€".encode("utf-8")[:-1], None) == "ab"  # cut mid-character
    assert decode_html(b"\xff\xfeh\x00i\x00", None) == "hi"  # UTF-16 BOM
    assert decode_html(b"x", "text/html; charset=nonsense-42") == "x"


async def test_many_pages_concurrently(site, guard, settings):
    names = ["news_bike_lanes", "docs_asyncio_timeouts", "wiki_axolotl", "travel_lisbon"]
    res = await fetch_pages([f"{site.base}/page/{n}" for n in names], settings, guard=guard)
    assert [r.status for r in res] == [OK] * 4
    assert [r.url.rsplit("/", 1)[1] for r in res] == names  # input order kept
    assert all(r.elapsed > 0 for r in res)


async def test_invalid_urls_do_not_raise(settings, guard):
    res = await fetch_pages(["not a url", "ftp://x.example/", "http://", "http://[::1"], settings,
                            guard=guard)
    assert all(r.status in (BLOCKED, ERROR) for r in res)
