"""Scale-out benchmark: paced streams through one replica, a sticky proxy with two replicas
on PostgreSQL, a minimal gr.ChatInterface, and the upstream alone, side by side in one run.

    python bench/bench_scale.py [--quick] [--levels 1,32,64] [--out bench/results/scale.json]

Upstream: a paced OpenAI-compatible SSE server in its own process (asyncio, keep-alive,
`--rate` tokens/s per stream, like a model server; the first token at once).

Paths, each fed by that upstream:
  direct    `python app.py`, one replica, SQLite (the default install)
  proxy     HAProxy (cookie-sticky) → 2 × `python app.py` on one PostgreSQL (throwaway cluster,
            fsync on); `deploy/haproxy.cfg` when present, else the minimal config below
  chatif    a 10-line `gr.ChatInterface` over the same upstream (bench_chat.py's baseline)
  upstream  the model server alone (httpx, no Gradio)

Load: one asyncio process speaking Gradio's queue protocol as the browser does (POST
/gradio_api/queue/join, then the /gradio_api/queue/data SSE stream, diffs and all), one httpx
client (cookie jar) per simulated user, a 43-character identity token per user, a fresh
conversation and a fresh Gradio session per sample. A level of N users is N closed loops
(each sends, reads the answer to its end, sends again), started over `--ramp` seconds. The
app's per-user limits (messages per minute, answers at once) are set out of the way.
`--proxy-option LINE` adds a line to the HAProxy config's defaults (to measure a change).

Per (path, level): p50/p95 TTFT (join → first SSE message with answer text), tokens/s per
stream (tokens after the first update ÷ time from first to last update), errors, and the
server processes' CPU seconds per 1,000 relayed tokens (utime+stime from /proc of the app,
proxy and PostgreSQL processes, before and after the cell). Prints a table and the targets;
writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import ROOT  # (repo on sys.path, offline env)

from bench_chat import Procs, _loadavg, _versions, pct, start_chatif  # noqa: E402
from tests.conftest import free_port, start_app, wait_http  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "scale.json"
PATHS = ("direct", "proxy", "chatif", "upstream")
MARK = "zq"                   # the upstream's token text is "zq ": counted in what arrives
PROMPT = "Say something."
MODEL = "paced"

# --------------------------------------------------------------------------- paced upstream


async def _serve_upstream(port: int, rate: float) -> None:
    """OpenAI-compatible /v1/chat/completions streaming `max_tokens` tokens at `rate`/s."""
    period = 1.0 / rate

    def chunk(body: dict) -> bytes:
        data = b"data: " + json.dumps(body).encode() + b"\n\n"
        return b"%x\r\n%s\r\n" % (len(data), data)

    def delta(content, finish=None):
        return {"id": "chatcmpl-paced", "object": "chat.completion.chunk", "created": 0,
                "model": MODEL, "choices": [{"index": 0, "delta": {} if content is None else {
                    "role": "assistant", "content": content}, "logprobs": None,
                    "finish_reason": finish}]}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:  # keep-alive: several requests per connection
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in lines[1:] if line)}
                length = int(headers.get("content-length") or 0)
                body = json.loads(await reader.readexactly(length)) if length else {}
                if method == "GET":
                    payload = json.dumps({"object": "list", "data": [
                        {"id": MODEL, "object": "model"}]}).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
                    await writer.drain()
                    continue
                n = int(body.get("max_tokens") or 64)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
                start = loop.time()
                for i in range(n):
                    wait = start + i * period - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    writer.write(chunk(delta(MARK + " ")))
                    await writer.drain()
                writer.write(chunk(delta(None, "length")))
                writer.write(chunk({"id": "chatcmpl-paced", "object": "chat.completion.chunk",
                                    "created": 0, "model": MODEL, "choices": [], "usage": {
                                        "prompt_tokens": 7, "completion_tokens": n,
                                        "total_tokens": n + 7}}))
                done = b"data: [DONE]\n\n"
                writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print(f"http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def start_upstream(procs: Procs, rate: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = procs.add(subprocess.Popen(
        [sys.executable, __file__, "--serve-upstream", str(port), "--rate", str(rate)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/v1/models", timeout=30, proc=proc)
    return proc, url


# --------------------------------------------------------------------------- servers

APP_CONFIG = """
models:
  - name: {model}
    type: openai
    endpoint_url: {upstream}/v1
    context_length: 4096
    parameters: {{temperature: 0.7, top_p: 0.95, max_new_tokens: 4096}}
storage:
  {storage}
conversations:
  auto_titles: false   # one title request per answer here (a fresh chat each sample)
websearch:
  enabled: false
limits:
  messages_per_minute: 1000000
  max_concurrent_per_user: 1000
  max_turns: 1000
server:
  concurrency_limit: 256
  max_threads: 80
"""

# Used only when deploy/haproxy.cfg is missing (a trimmed checkout): cookie stickiness,
# because Gradio's /queue/join and /queue/data of one session must reach one replica
# (gradio-app/gradio issues 9070, 10487).
HAPROXY_CFG = """
global
    maxconn 8192
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout http-keep-alive 60s
frontend chat
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    cookie CHATUI_REPLICA insert indirect nocache httponly
    option httpchk GET /healthz
{servers}
"""


def start_replicas(procs: Procs, tmp: Path, upstream: str, pg_url: str, count: int = 2
                   ) -> list[tuple[subprocess.Popen, str]]:
    config = APP_CONFIG.format(model=MODEL, upstream=upstream, storage=f"url: {pg_url}")
    out: list = [None] * count
    errors: list = []

    def one(i):
        folder = tmp / f"replica{i + 1}"
        folder.mkdir()
        try:
            out[i] = start_app(folder, config)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    # Both at once, as a deployment starts them: the store's migration lock keeps one migrator.
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for item in out:
        if item is not None:
            procs.add(item[0])
    if errors:
        raise RuntimeError(f"replica failed to start: {errors[0]}")
    return out


def haproxy_config(port: int, replica_urls: list[str], tmp: Path) -> tuple[Path, str]:
    """The shipped deploy/ config with its servers pointed at our replicas, else ours."""
    ports = [int(u.rstrip("/").rsplit(":", 1)[1]) for u in replica_urls]
    path = tmp / "haproxy.cfg"
    try:
        from tests.deploy.proxies import HAPROXY_CFG as shipped, render_haproxy

        if shipped.exists():
            path.write_text(render_haproxy(ports, port))
            return path, f"shipped {shipped.relative_to(ROOT)} (addresses swapped for loopback)"
    except ImportError:
        pass
    servers = "\n".join(
        f"    server r{i + 1} {u.split('//')[1].rstrip('/')} check inter 2s cookie r{i + 1}"
        for i, u in enumerate(replica_urls))
    path.write_text(HAPROXY_CFG.format(port=port, servers=servers))
    return path, "bench's minimal cookie-sticky config"


def start_proxy(procs: Procs, tmp: Path, replica_urls: list[str], extra: list[str]
                ) -> tuple[subprocess.Popen, str, str]:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    port = free_port()
    cfg, source = haproxy_config(port, replica_urls, tmp)
    if extra:  # e.g. "option http-no-delay": what a config change would buy, measured
        text = cfg.read_text()
        if "\ndefaults\n" not in text:
            raise RuntimeError("--proxy-option: no 'defaults' section in the HAProxy config")
        cfg.write_text(text.replace("\ndefaults\n", "\ndefaults\n" + "".join(
            f"    {line}\n" for line in extra), 1))
        source += " + " + "; ".join(extra)
    check = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy config invalid: {check.stdout}{check.stderr}")
    log = open(tmp / "haproxy.log", "w")
    proc = procs.add(subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=log,
                                      stderr=subprocess.STDOUT))
    url = f"http://127.0.0.1:{port}/"
    wait_http(url + "healthz", timeout=30, proc=proc)
    return proc, url, source


# --------------------------------------------------------------------------- CPU accounting

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields after "(comm)", from `state`


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st:
                kids.setdefault(int(st[1]), []).append(int(entry))
    return kids


def cpu_seconds(roots: list[int]) -> float:
    """utime+stime of `roots` and their living descendants, plus what each root's exited
    (waited-for) children used: PostgreSQL backends come and go under the postmaster."""
    kids = _children()
    total, seen = 0, set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        st = _stat(pid)
        if st is None:
            continue
        total += int(st[11]) + int(st[12])          # utime, stime
        if pid in roots:
            total += int(st[13]) + int(st[14])      # cutime, cstime
        todo.extend(kids.get(pid, []))
    return total / _TICK


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


# --------------------------------------------------------------------------- load generator


class GradioTarget:
    """A Gradio app's chat event, driven through the queue protocol like a browser."""

    def __init__(self, name: str, base: str, api_name: str, values: dict | list):
        """values: by parameter name (dict), or positional (list, `None` = max_new_tokens)."""
        self.name, self.base, self.api_name, self.values = name, base.rstrip("/") + "/", \
            api_name, values

    def setup(self) -> None:
        import httpx

        config = httpx.get(self.base + "config", timeout=30).json()
        comps = {c["id"]: c for c in config["components"]}
        dep = next(d for d in config["dependencies"] if d.get("api_name") == self.api_name)
        self.fn_index = dep["id"]
        self.trigger_id = (dep.get("targets") or [[None]])[0][0]
        info = httpx.get(self.base + "gradio_api/info", timeout=30).json()
        params = info["named_endpoints"]["/" + self.api_name]["parameters"]
        names = iter(p.get("parameter_name") or p.get("label") for p in params)
        # data = every input in order; State inputs travel as null (the server holds them)
        self.layout = []
        for cid in dep["inputs"]:
            if comps[cid].get("type") == "state":
                self.layout.append(None)
            else:
                self.layout.append(next(names))

    def data(self, user: "User", n: int) -> list:
        if isinstance(self.values, list):
            given = iter(n if v is None else v for v in self.values)
            return [None if name is None else next(given) for name in self.layout]
        values = {**self.values, "max_new_tokens": n}
        out = []
        for name in self.layout:
            if name is None:
                out.append(None)
            elif name in values:
                out.append(values[name])
            elif "token" in name:  # the anonymous identity (a BrowserState): one per user
                out.append(user.token)
            else:
                raise RuntimeError(f"{self.name}: unknown input {name!r}")
        return out

    async def sample(self, user: "User", n: int) -> dict:
        client = user.client
        session = secrets.token_hex(6)  # a fresh Gradio session: a fresh conversation
        t0 = time.perf_counter()
        s: dict = {"t0": t0, "error": None, "session": session}
        try:
            r = await client.post(self.base + "gradio_api/queue/join", json={
                "data": self.data(user, n), "fn_index": self.fn_index, "session_hash": session,
                "event_data": None, "trigger_id": self.trigger_id})
            if r.status_code != 200:
                s["error"] = f"join HTTP {r.status_code}: {r.text[:120]}"
                return s
            s["joined"] = time.perf_counter() - t0
            first = last = None
            first_tokens = 0
            final = None
            async with client.stream("GET", self.base + "gradio_api/queue/data",
                                     params={"session_hash": session}) as resp:
                if resp.status_code != 200:
                    s["error"] = f"data HTTP {resp.status_code}"
                    return s
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    now = time.perf_counter()
                    msg = json.loads(line[5:])
                    kind = msg.get("msg")
                    if kind == "process_generating":
                        if MARK in line:
                            if first is None:
                                first, first_tokens = now, line.count(MARK)
                            last = now
                        elif "generating" not in s:
                            s["generating"] = now - t0  # the first update (the app: the question)
                    elif kind == "process_completed":
                        if not msg.get("success"):
                            s["error"] = "failed: " + str(msg.get("output"))[:160]
                        final = (msg.get("output") or {}).get("data")
                        s["done"] = now - t0
                        break
                    elif kind in ("unexpected_error", "close_stream"):
                        s["error"] = s["error"] or f"{kind}: {msg.get('message')}"
                        break
        except Exception as e:  # noqa: BLE001
            s["error"] = f"{type(e).__name__}: {e}"[:200]
            return s
        text = json.dumps(final[0] if final else None, ensure_ascii=False)
        tokens = text.count(MARK)
        if s["error"] is None:
            if "Error:**" in text:
                s["error"] = "app error: " + text[-160:]
            elif tokens != n:
                s["error"] = f"got {tokens} tokens, expected {n}"
        if first is not None:
            s.update(ttft=first - t0, tokens=tokens, first_tokens=first_tokens,
                     stream_s=last - first)
        elif s["error"] is None:
            s["error"] = "no answer text"
        return s


class UpstreamTarget:
    name = "upstream"

    def __init__(self, url: str):
        self.url = url.rstrip("/") + "/v1/chat/completions"

    def setup(self) -> None:
        pass

    async def sample(self, user: "User", n: int) -> dict:
        t0 = time.perf_counter()
        s: dict = {"t0": t0, "error": None}
        first = last = None
        tokens = 0
        try:
            async with user.client.stream("POST", self.url, json={
                    "model": MODEL, "stream": True, "max_tokens": n,
                    "messages": [{"role": "user", "content": PROMPT}]}) as resp:
                async for line in resp.aiter_lines():
                    if line.startswith("data:") and MARK in line:
                        now = time.perf_counter()
                        first = first or now
                        last = now
                        tokens += 1
            s["done"] = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001
            s["error"] = f"{type(e).__name__}: {e}"[:200]
            return s
        if tokens != n:
            s["error"] = f"got {tokens} tokens, expected {n}"
        if first is not None:
            s.update(ttft=first - t0, tokens=tokens, first_tokens=1, stream_s=last - first)
        return s


class User:
    """One simulated browser: its own cookie jar (proxy stickiness) and identity token."""

    def __init__(self):
        import httpx

        self.token = secrets.token_urlsafe(32)  # 43 characters, like the app's own tokens
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(120, connect=30),
                                        limits=httpx.Limits(max_connections=8))

    async def aclose(self):
        await self.client.aclose()


async def run_level(target, users: list[User], n: int, per_user: int, ramp: float,
                    samples: list) -> None:
    async def loop(i: int, user: User):
        await asyncio.sleep(ramp * i / max(1, len(users)))
        for _ in range(per_user):
            samples.append(await target.sample(user, n))

    await asyncio.gather(*(loop(i, u) for i, u in enumerate(users)))


def summarize(samples: list[dict], tokens_expected: int) -> dict:
    ok = [s for s in samples if not s.get("error") and "ttft" in s]
    ttft = [s["ttft"] * 1000 for s in ok]
    tps = [(s["tokens"] - s["first_tokens"]) / s["stream_s"] for s in ok
           if s["stream_s"] > 0 and s["tokens"] > s["first_tokens"]]
    return {"samples": len(samples), "errors": len(samples) - len(ok),
            "error_examples": sorted({s["error"] for s in samples if s.get("error")})[:3],
            "ttft_ms_p50": pct(ttft, 0.5), "ttft_ms_p95": pct(ttft, 0.95),
            "ttft_ms_max": max(ttft) if ttft else None,
            "tok_s_per_stream_p50": pct(tps, 0.5), "tok_s_per_stream_p5": pct(tps, 0.05),
            "tokens_relayed": sum(s.get("tokens", 0) for s in samples if not s.get("error"))}


# --------------------------------------------------------------------------- main


def fmt(v, spec=".0f"):
    return "-" if v is None else format(v, spec)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few-seconds-per-cell smoke run")
    ap.add_argument("--levels", default=None, help="concurrent users, e.g. 1,32,64")
    ap.add_argument("--paths", default=",".join(PATHS), help=",".join(PATHS))
    ap.add_argument("--rate", type=float, default=30.0, help="upstream tokens/s per stream")
    ap.add_argument("--tokens", type=int, default=None, help="tokens per answer")
    ap.add_argument("--samples", type=int, default=None, help="samples per path at 1 user")
    ap.add_argument("--per-user", type=int, default=None, help="answers per user at N > 1")
    ap.add_argument("--ramp", type=float, default=1.0, help="seconds over which users start")
    ap.add_argument("--proxy-option", action="append", default=[],
                    help="a line added to the HAProxy config's defaults (repeatable)")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--serve-upstream", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_upstream is not None:
        asyncio.run(_serve_upstream(args.serve_upstream, args.rate))
        return 0

    quick = args.quick
    levels = [int(x) for x in (args.levels or ("1,4" if quick else "1,32,64")).split(",")]
    paths = [p for p in args.paths.split(",") if p]
    unknown = set(paths) - set(PATHS)
    if unknown:
        ap.error(f"unknown path(s): {', '.join(sorted(unknown))}")
    # 150 tokens = 5 s at 30 tok/s: a short chat answer. Shorter answers weigh the per-answer
    # costs (new Gradio session, store writes) more against the per-token ones.
    n = args.tokens or (20 if quick else 150)
    samples1 = args.samples or (2 if quick else 8)
    per_user = args.per_user or (1 if quick else 2)

    procs = Procs()
    pg = None
    started = time.perf_counter()
    load_before = _loadavg()
    print(f"load average before: {load_before} on {os.cpu_count()} CPUs", flush=True)
    cells: dict = {}
    notes: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmpdir:
            tmp = Path(tmpdir)
            up_proc, up_url = start_upstream(procs, args.rate)
            targets, cpu_roots = {}, {}
            if "direct" in paths:
                folder = tmp / "direct"
                folder.mkdir()
                proc, url = start_app(folder, APP_CONFIG.format(
                    model=MODEL, upstream=up_url, storage="db_path: {db}"))
                procs.add(proc)
                targets["direct"] = GradioTarget("direct", url, "chat", app_values())
                cpu_roots["direct"] = lambda p=proc.pid: [p]
            if "proxy" in paths:
                from tests.pgcluster import PgCluster

                pg = PgCluster(durable=True).start()
                pg_url = pg.create_database("bench_scale")
                replicas = start_replicas(procs, tmp, up_url, pg_url)
                hp, proxy_url, source = start_proxy(procs, tmp, [u for _, u in replicas],
                                                    args.proxy_option)
                notes.append(f"proxy: HAProxy {source}, 2 replicas, PostgreSQL fsync on")
                targets["proxy"] = GradioTarget("proxy", proxy_url, "chat", app_values())
                pm = postmaster_pid(pg.data)
                rpids = [p.pid for p, _ in replicas]
                cpu_roots["proxy"] = lambda: [*rpids, hp.pid, pm]
            if "chatif" in paths:
                url = start_chatif(procs, tmp, {MODEL: up_url})
                chatif_proc = procs.procs[-1]
                targets["chatif"] = GradioTarget("chatif", url, "chat", [PROMPT, MODEL, None])
                cpu_roots["chatif"] = lambda p=chatif_proc.pid: [p]
            if "upstream" in paths:
                targets["upstream"] = UpstreamTarget(up_url)
                cpu_roots["upstream"] = lambda: []
            for t in targets.values():
                t.setup()
            print(f"servers up in {time.perf_counter() - started:.0f}s; "
                  f"upstream {args.rate:g} tok/s per stream, {n} tokens per answer", flush=True)
            cells = asyncio.run(measure(targets, cpu_roots, up_proc.pid, levels, n, samples1,
                                        per_user, args.ramp, procs))
    finally:
        procs.stop()
        if pg is not None:
            pg.stop()
    load_after = _loadavg()
    total = time.perf_counter() - started
    return report(cells, levels, paths, n, args, load_before, load_after, total, notes,
                  quick, samples1, per_user)


def app_values() -> dict:
    return {"message": PROMPT, "conversation_id": "", "model": MODEL, "system_prompt": "",
            "temperature": 0.7, "top_p": 0.95, "web_search": False}


async def measure(targets, cpu_roots, upstream_pid, levels, n, samples1, per_user, ramp,
                  procs) -> dict:
    cells: dict = {}
    users = [User() for _ in range(max(levels))]
    try:
        names = list(targets)
        for name in names:  # warm-up: connections, imports, first-query plans; two users,
            for user in users[:2]:  # so that both replicas behind the proxy are warm
                await targets[name].sample(user, max(16, min(n, 20)))  # the app's minimum
        for level in levels:
            order = names
            raw = {name: [] for name in names}
            cpu = {name: 0.0 for name in names}
            up_cpu = {name: 0.0 for name in names}
            gen_cpu = {name: 0.0 for name in names}
            wall = {name: 0.0 for name in names}
            rounds = samples1 if level == 1 else 1
            for r in range(rounds):
                # at 1 user: paths interleaved, order rotated per sample (drift hits all alike)
                k = r % len(order)
                for name in order[k:] + order[:k]:
                    roots = cpu_roots[name]()
                    # the load generator: this process alone (the servers are its children)
                    c0, u0, g0 = cpu_seconds(roots), cpu_seconds([upstream_pid]), \
                        time.process_time()
                    t0 = time.perf_counter()
                    await run_level(targets[name], users[:level], n,
                                    1 if level == 1 else per_user, ramp if level > 1 else 0,
                                    raw[name])
                    wall[name] += time.perf_counter() - t0
                    cpu[name] += cpu_seconds(roots) - c0
                    up_cpu[name] += cpu_seconds([upstream_pid]) - u0
                    gen_cpu[name] += time.process_time() - g0
            for name in names:
                c = summarize(raw[name], n)
                toks = c["tokens_relayed"]
                c.update(cpu_s=cpu[name], upstream_cpu_s=up_cpu[name],
                         loadgen_cpu_s=gen_cpu[name], wall_s=wall[name],
                         cpu_s_per_1k_tokens=(cpu[name] / toks * 1000) if toks else None,
                         raw=raw[name])
                cells[(name, level)] = c
                procs.check()
                print(f"  {name:8s} users={level:<3d} TTFT p50 {fmt(c['ttft_ms_p50'], '.1f')} "
                      f"p95 {fmt(c['ttft_ms_p95'], '.1f')} ms  "
                      f"{fmt(c['tok_s_per_stream_p50'], '.1f')} tok/s/stream  "
                      f"err {c['errors']}/{c['samples']}  "
                      f"CPU {fmt(c['cpu_s_per_1k_tokens'], '.3f')} s/1k tok  "
                      f"(load {_loadavg()})", flush=True)
    finally:
        for u in users:
            await u.aclose()
    return cells


def report(cells, levels, paths, n, args, load_before, load_after, total, notes, quick,
           samples1, per_user) -> int:
    print()
    head = (f"{'path':9s} {'users':>5s} {'samples':>7s} {'TTFT p50':>9s} {'p95':>8s} "
            f"{'max':>8s} {'tok/s/str':>9s} {'p5':>6s} {'err':>4s} {'CPU s/1k tok':>12s} "
            f"{'CPU s':>7s} {'gen CPU s':>9s}")
    print(head)
    print("-" * len(head))
    for level in levels:
        for name in paths:
            c = cells.get((name, level))
            if not c:
                continue
            print(f"{name:9s} {level:5d} {c['samples']:7d} {fmt(c['ttft_ms_p50'], '.1f'):>9s} "
                  f"{fmt(c['ttft_ms_p95'], '.1f'):>8s} {fmt(c['ttft_ms_max'], '.1f'):>8s} "
                  f"{fmt(c['tok_s_per_stream_p50'], '.1f'):>9s} "
                  f"{fmt(c['tok_s_per_stream_p5'], '.1f'):>6s} {c['errors']:4d} "
                  f"{fmt(c['cpu_s_per_1k_tokens'], '.3f'):>12s} {fmt(c['cpu_s'], '.1f'):>7s} "
                  f"{fmt(c['loadgen_cpu_s'], '.1f'):>9s}")
    print("(TTFT ms: queue/join → first SSE message carrying answer text; tok/s/str: per stream, "
          "first to last update, p50 and p5; CPU: the path's server processes — app / replicas "
          "+ HAProxy + PostgreSQL / ChatInterface; gen CPU: this load generator; the upstream's "
          "own CPU is in the JSON)")
    for note in notes:
        print("note:", note)

    def get(name, level, key):
        return (cells.get((name, level)) or {}).get(key)

    ref = 32 if 32 in levels else max(levels)
    targets = {}
    for name in ("direct", "proxy"):
        p1, pn = get(name, 1, "ttft_ms_p95"), get(name, ref, "ttft_ms_p95")
        if p1 and pn is not None:
            targets[f"{name}_p95_ttft_{ref}_users_within_2x_of_1_and_0_errors"] = {
                "value": pn / p1, "errors": get(name, ref, "errors"),
                "pass": pn / p1 <= 2 and get(name, ref, "errors") == 0}
    d1, x1 = get("direct", 1, "ttft_ms_p50"), get("proxy", 1, "ttft_ms_p50")
    if d1 is not None and x1 is not None:
        targets["proxy_postgres_adds_le_15ms_p50_ttft_1_user"] = {
            "value_ms": x1 - d1, "pass": x1 - d1 <= 15}
    dr, xr = get("direct", ref, "ttft_ms_p50"), get("proxy", ref, "ttft_ms_p50")
    if dr is not None and xr is not None:
        targets[f"proxy_postgres_adds_le_15ms_p50_ttft_{ref}_users"] = {
            "value_ms": xr - dr, "pass": xr - dr <= 15}
    for level in levels:
        a, b = get("direct", level, "cpu_s_per_1k_tokens"), get("chatif", level,
                                                                "cpu_s_per_1k_tokens")
        if a is not None and b is not None:
            targets[f"app_cpu_per_1k_tokens_below_chatinterface_{level}_users"] = {
                "app": a, "chatif": b, "pass": a < b}
    print("Targets:")
    for k, t in targets.items():
        vals = ", ".join(f"{a}={fmt(b, '.3f') if isinstance(b, float) else b}"
                         for a, b in t.items() if a != "pass")
        print(f"  {'PASS' if t['pass'] else 'MISS'}  {k}: {vals}")
    print(f"total {total:.0f}s; load average before {load_before}, after {load_after} "
          f"({os.cpu_count()} CPUs)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "versions": _versions(), "loadavg_before": load_before, "loadavg_after": load_after,
        "mode": "quick" if quick else "default", "levels": levels, "rate": args.rate,
        "tokens_per_answer": n, "samples_at_1_user": samples1, "answers_per_user": per_user,
        "ramp_s": args.ramp, "total_s": total, "notes": notes,
        "cells": [{"path": p, "users": lvl, **c} for (p, lvl), c in cells.items()],
        "targets": targets,
    }, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
