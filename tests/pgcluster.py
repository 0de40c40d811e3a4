"""A real, throwaway PostgreSQL cluster for tests and benchmarks (Debian's `postgresql` package).

    with PgCluster() as pg:                 # initdb + pg_ctl start in a temp dir, loopback port
        url = pg.create_database()          # postgresql://postgres@127.0.0.1:PORT/t_<hex>
    # stopped and removed

initdb refuses to run as root, so as root every server command runs as the `postgres` user
(`runuser -u postgres --`) in a directory that user owns; as any other user it runs directly.
The socket lives in the temp dir too (no /var/run/postgresql needed). Never a mock.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def find_bin_dir() -> Path:
    """Directory with initdb/pg_ctl: $PG_BIN, else the newest /usr/lib/postgresql/*/bin."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    if which:
        return Path(which).parent
    raise RuntimeError("PostgreSQL server binaries not found (initdb): "
                       "apt-get install -y postgresql, or set PG_BIN")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """initdb + pg_ctl on 127.0.0.1:<free port>; ``durable=False`` turns fsync off (tests only:
    it changes nothing a client can see, only what survives an OS crash)."""

    def __init__(self, *, durable: bool = False, max_connections: int = 200) -> None:
        self.bin = find_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="chatui-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.durable = durable
        self.max_connections = max_connections
        self.as_root = os.geteuid() == 0
        self.started = False

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> PgCluster:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self.root.chmod(0o755)
        try:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"initdb failed: {e.stderr.strip()}") from None
        opts = [f"-p {self.port}", f"-k {self.root}", "-c listen_addresses=127.0.0.1",
                f"-c max_connections={self.max_connections}"]
        if not self.durable:
            opts += ["-c fsync=off", "-c full_page_writes=off"]
        proc = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                         "-o", " ".join(opts), "-w", "-t", "60", "start", check=False)
        if proc.returncode != 0:
            log = (self.root / "server.log")
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {proc.stderr.strip()} {tail}")
        self.started = True
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.started:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop",
                      check=False)
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
