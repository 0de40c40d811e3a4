"""The proxy configs shipped under deploy/, rendered for loopback and run as real processes.

    with Proxy.haproxy([port1, port2], tmp_dir) as proxy:   # deploy/haproxy.cfg
        proxy.url                                            # http://127.0.0.1:PORT/
    Proxy.nginx([...], tmp_dir)                              # deploy/nginx/chatui.conf
    Proxy.haproxy([...], tmp_dir, sticky=False)              # the same without stickiness

Rendering only swaps the compose service addresses (chatui-1:7860, …) for loopback ports and
the listening port; each swap must match exactly once, so a change to the shipped file that
the tests would silently stop covering fails here instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT, free_port

HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
NGINX_CONF = ROOT / "deploy" / "nginx" / "chatui.conf"
SERVICES = ["chatui-1", "chatui-2"]          # the replica services of docker-compose.yml


def _swap(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise AssertionError(f"expected {old!r} exactly once in the shipped proxy config")
    return text.replace(old, new)


def render_haproxy(ports: list[int], listen: int, sticky: bool = True) -> str:
    text = HAPROXY_CFG.read_text()
    text = _swap(text, "bind :8080", f"bind 127.0.0.1:{listen}")
    for name, port in zip(SERVICES, ports, strict=True):
        text = _swap(text, f"server {name} {name}:7860", f"server {name} 127.0.0.1:{port}")
    if not sticky:  # the negative control: plain round robin, no cookie
        text = _swap(text, "balance leastconn", "balance roundrobin")
        lines = [ln for ln in text.splitlines() if not ln.strip().startswith("cookie ")]
        text = "\n".join(ln.split(" cookie ")[0] if ln.strip().startswith("server ") else ln
                         for ln in lines) + "\n"
    return text


def render_nginx(ports: list[int], listen: int, tmp_dir: Path) -> str:
    """A minimal main config around the shipped http-level file (as conf.d would include it)."""
    text = NGINX_CONF.read_text()
    text = _swap(text, "listen 8080;", f"listen 127.0.0.1:{listen};")
    for name, port in zip(SERVICES, ports, strict=True):
        text = _swap(text, f"server {name}:7860 ", f"server 127.0.0.1:{port} ")
    (tmp_dir / "chatui.conf").write_text(text)
    temp = "\n".join(f"    {k}_temp_path {tmp_dir / k};"
                     for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""   # workers write the temp dirs above
    return (f"{user}worker_processes 1;\npid {tmp_dir / 'nginx.pid'};\n"
            f"error_log {tmp_dir / 'error.log'} warn;\nevents {{ worker_connections 1024; }}\n"
            f"http {{\n    access_log {tmp_dir / 'access.log'};\n{temp}\n"
            f"    include {tmp_dir / 'chatui.conf'};\n}}\n")


def check_config(kind: str, config: Path) -> subprocess.CompletedProcess:
    """`haproxy -c` / `nginx -t`: the binary's own syntax check of a rendered file."""
    cmd = ([shutil.which("haproxy") or "haproxy", "-c", "-f", str(config)] if kind == "haproxy"
           else [shutil.which("nginx") or "nginx", "-t", "-c", str(config), "-p",
                 str(config.parent)])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


class Proxy:
    def __init__(self, kind: str, ports: list[int], tmp_dir: Path, sticky: bool = True):
        if kind == "nginx" and not sticky:
            raise ValueError("the round-robin variant is only rendered from deploy/haproxy.cfg")
        self.kind, self.dir = kind, Path(tmp_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.config = self.dir / ("haproxy.cfg" if kind == "haproxy" else "nginx.conf")
        self.config.write_text(render_haproxy(ports, self.port, sticky) if kind == "haproxy"
                               else render_nginx(ports, self.port, self.dir))
        self.log = self.dir / "proxy.log"
        self.proc: subprocess.Popen | None = None

    @classmethod
    def haproxy(cls, ports, tmp_dir, sticky: bool = True) -> Proxy:
        return cls("haproxy", ports, tmp_dir, sticky)

    @classmethod
    def nginx(cls, ports, tmp_dir) -> Proxy:
        return cls("nginx", ports, tmp_dir)

    def start(self) -> Proxy:
        exe = shutil.which(self.kind)
        if exe is None:
            raise RuntimeError(f"{self.kind} is not installed (apt-get install -y {self.kind})")
        cmd = ([exe, "-f", str(self.config), "-db"] if self.kind == "haproxy"
               else [exe, "-c", str(self.config), "-p", str(self.dir), "-g", "daemon off;"])
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.kind} did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
