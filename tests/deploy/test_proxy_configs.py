"""deploy/haproxy.cfg and deploy/nginx/chatui.conf, checked without starting anything: what
makes Gradio work behind them (stickiness, unbuffered long-lived SSE, health checks), and the
binaries' own syntax check on the files rendered for loopback. tests/test_replicas.py runs
them for real."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.deploy.proxies import HAPROXY_CFG, NGINX_CONF, Proxy, check_config


def directives(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def seconds(value: str) -> float:
    n, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()
    return int(n) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[unit]


def test_haproxy_is_sticky_checks_healthz_and_waits_for_long_streams():
    d = directives(HAPROXY_CFG.read_text())
    assert "cookie chatui_replica insert indirect nocache httponly attr \"SameSite=Lax\"" in d
    assert "option httpchk GET /healthz" in d and "http-check expect status 200" in d
    assert any(x.startswith("default-server check") for x in d)
    assert "option redispatch 1" in d                       # a dead replica's users move on
    for key in ("timeout client", "timeout server"):
        value = next(x for x in d if x.startswith(key + " ")).split()[-1]
        assert seconds(value) >= 600, key                   # SSE answers last minutes
    assert not any("http-buffer-request" in x or "compression" in x for x in d)


def test_nginx_is_sticky_unbuffered_and_keeps_the_port_in_host():
    d = directives(NGINX_CONF.read_text())
    assert "hash $chatui_sticky_key consistent;" in d
    assert "default $cookie_chatui_sticky;" in d and "\"\" $request_id;" in d
    assert "add_header Set-Cookie $chatui_sticky_cookie always;" in d
    assert "proxy_buffering off;" in d and "proxy_cache off;" in d
    assert seconds(next(x for x in d if x.startswith("proxy_read_timeout")).split()[-1][:-1]
                   ) >= 600
    assert "proxy_set_header Host $http_host;" in d     # $host drops the port Gradio needs


@pytest.mark.parametrize("kind, sticky", [("haproxy", True), ("haproxy", False),
                                          ("nginx", True)])
def test_the_binary_accepts_the_rendered_config(kind, sticky, tmp_path):
    if shutil.which(kind) is None:
        pytest.fail(f"{kind} is not installed (apt-get install -y {kind})")
    proxy = Proxy(kind, [7001, 7002], tmp_path, sticky=sticky)
    r = check_config(kind, proxy.config)
    assert r.returncode == 0, r.stdout + r.stderr
    text = proxy.config.read_text() + (
        (tmp_path / "chatui.conf").read_text() if kind == "nginx" else "")
    assert "127.0.0.1:7001" in text and "127.0.0.1:7002" in text
    assert ("cookie chatui_replica" in text or "hash $chatui_sticky_key" in text) == sticky
