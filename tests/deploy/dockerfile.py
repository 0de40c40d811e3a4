"""A small Dockerfile reader, and a replayer that runs a Dockerfile's build without a Docker engine.

There is no Docker daemon on the machines that run these tests, so `replay()` proves the
Dockerfile's *Python* steps instead: for the stages the default target needs, in order, it
creates a fresh venv per `FROM <external image>` (the image's interpreter stands in for the
base image), runs every `RUN` that calls pip/python with `/bin/sh -c`, with the stage's ENV
and ARG values, copies what `COPY` copies (honouring .dockerignore), and returns what is
needed to start `CMD` and probe `HEALTHCHECK`.

Container paths are mapped under one temporary "root" directory (`/wheels` → `ROOT/wheels`);
a `RUN --mount=type=bind,from=STAGE,source=S,target=T` becomes a symlink `ROOT/T` → `ROOT/S`;
cache mounts are dropped (pip then uses this machine's cache, which only changes speed).
System steps (`apt-get`, `useradd`) are skipped and listed in the result; any other kind of RUN
is an error, so a new step cannot silently escape the replay.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SYSTEM_COMMANDS = ("apt-get", "useradd")
_PY_STEP = re.compile(r"(?:^|[\s;&|(])(?:pip3?|python3?)\s")
_ABS_PATH = re.compile(r"(?:^|(?<=[\s=:'\"\[,]))/[\w.-]+(?:/[\w.-]*)*")
_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)")


@dataclass
class Instruction:
    cmd: str            # upper case: RUN, COPY, ENV, ...
    args: str           # the rest, flags removed
    flags: list[str]    # leading --flags (RUN --mount=..., COPY --chown=...)
    line: int

    @property
    def exec_form(self) -> list[str] | None:
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        return value if isinstance(value, list) else None

    def flag(self, name: str) -> str | None:
        for f in self.flags:
            if f.startswith(f"--{name}="):
                return f.split("=", 1)[1]
        return None


@dataclass
class Stage:
    index: int
    base: str                  # as written (may contain ${ARG})
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, cmd: str) -> list[Instruction]:
        return [i for i in self.instructions if i.cmd == cmd]


def expand(text: str, variables: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(3)
        if name in variables:
            return variables[name]
        return m.group(2) or ""
    return _VAR.sub(sub, text)


def _split_flags(rest: str) -> tuple[list[str], str]:
    flags = []
    rest = rest.strip()
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        flags.append(flag)
        rest = rest.lstrip()
    return flags, rest


def parse_pairs(args: str) -> dict[str, str]:
    """`ENV A=1 B="x y"` / `ARG A=1 B` → dict (ARG without a default maps to '')."""
    out = {}
    for token in shlex.split(args, posix=True):
        key, _, value = token.partition("=")
        out[key] = value
    return out


class Dockerfile:
    def __init__(self, text: str):
        self.text = text
        self.global_args: dict[str, str] = {}
        self.stages: list[Stage] = []
        for instr in self._instructions(text):
            if instr.cmd == "FROM":
                words = instr.args.split()
                name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
                self.stages.append(Stage(len(self.stages), words[0], name))
            elif not self.stages:
                if instr.cmd != "ARG":
                    raise ValueError(f"line {instr.line}: only ARG may precede the first FROM")
                self.global_args.update(parse_pairs(instr.args))
            else:
                self.stages[-1].instructions.append(instr)

    @classmethod
    def read(cls, path: str | os.PathLike) -> Dockerfile:
        return cls(Path(path).read_text(encoding="utf-8"))

    @staticmethod
    def _instructions(text: str) -> list[Instruction]:
        out, buf, start = [], [], 0
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not buf and (not line or line.startswith("#")):
                continue
            if buf and line.startswith("#"):
                continue  # comment lines inside a continuation are dropped, as Docker does
            if not buf:
                start = n
            if line.endswith("\\"):
                buf.append(line[:-1].strip())
                continue
            buf.append(line)
            joined = " ".join(b for b in buf if b)
            buf = []
            cmd, _, rest = joined.partition(" ")
            flags, rest = _split_flags(rest) if cmd.upper() in ("RUN", "COPY", "ADD", "HEALTHCHECK") \
                else ([], rest.strip())
            out.append(Instruction(cmd.upper(), rest, flags, start))
        return out

    # --- stages -------------------------------------------------------------------------

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def args(self, build_args: dict[str, str] | None = None) -> dict[str, str]:
        return {**self.global_args, **(build_args or {})}

    def base_of(self, stage: Stage, build_args: dict[str, str] | None = None) -> str:
        return expand(stage.base, self.args(build_args))

    def parent(self, stage: Stage, build_args: dict[str, str] | None = None) -> Stage | None:
        base = self.base_of(stage, build_args)
        return next((s for s in self.stages[:stage.index] if s.name == base), None)

    def chain(self, target: str | None = None, build_args: dict[str, str] | None = None
              ) -> list[Stage]:
        """The stages `target` (default: the last) is built FROM, root first."""
        stage = self.stage(target) if target else self.stages[-1]
        out = [stage]
        while (parent := self.parent(out[0], build_args)) is not None:
            out.insert(0, parent)
        return out

    def needed(self, target: str | None = None, build_args: dict[str, str] | None = None
               ) -> list[Stage]:
        """Every stage a build of `target` touches (FROM chain + mount/COPY --from), in order."""
        seen: dict[int, Stage] = {}

        def visit(stage: Stage) -> None:
            for s in self.chain(stage.name, build_args) if stage.name else [stage]:
                for instr in s.instructions:
                    for src in _from_refs(instr):
                        visit(self.stage(src))
                seen.setdefault(s.index, s)
        visit(self.stage(target) if target else self.stages[-1])
        return [seen[i] for i in sorted(seen)]


def _from_refs(instr: Instruction) -> list[str]:
    refs = []
    if instr.cmd == "COPY" and instr.flag("from"):
        refs.append(instr.flag("from"))
    for f in instr.flags:
        if f.startswith("--mount="):
            opts = dict(kv.partition("=")[::2] for kv in f[len("--mount="):].split(","))
            if opts.get("from"):
                refs.append(opts["from"])
    return refs


def mounts(instr: Instruction) -> list[dict[str, str]]:
    out = []
    for f in instr.flags:
        if f.startswith("--mount="):
            out.append(dict(kv.partition("=")[::2] for kv in f[len("--mount="):].split(",")))
    return out


def is_python_step(command: str) -> bool:
    return bool(_PY_STEP.search(" " + command))


def classify_run(command: str) -> str:
    """'python' (replayed), 'system' (skipped) — anything else raises."""
    if is_python_step(command):
        return "python"
    first = command.split()[0] if command.split() else ""
    if first in SYSTEM_COMMANDS:
        return "system"
    raise ValueError(f"RUN step is neither a pip/python step nor a known system step: {command!r}")


# --- .dockerignore -------------------------------------------------------------------------

def _glob_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


class DockerIgnore:
    def __init__(self, text: str = ""):
        self.rules: list[tuple[bool, re.Pattern]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = line.lstrip("!").strip().strip("/")
            self.rules.append((negate, _glob_regex(os.path.normpath(pattern))))

    @classmethod
    def read(cls, context: Path) -> DockerIgnore:
        path = context / ".dockerignore"
        return cls(path.read_text(encoding="utf-8") if path.exists() else "")

    def ignored(self, rel: str) -> bool:
        parts = rel.strip("/").split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        result = False
        for negate, rx in self.rules:
            if any(rx.match(p) for p in prefixes):
                result = not negate
        return result


# --- replay --------------------------------------------------------------------------------

@dataclass
class Replay:
    root: Path
    env: dict[str, str]              # the final stage's environment (Dockerfile ENV applied)
    workdir: Path
    cmd: list[str]
    healthcheck: str | None
    exposed: list[str]
    python: Path                     # the final stage's interpreter (venv)
    ran: list[tuple[str, str, float]] = field(default_factory=list)   # (stage, command, seconds)
    skipped: list[tuple[str, str]] = field(default_factory=list)      # (stage, command)
    copied: list[str] = field(default_factory=list)                   # context paths copied


class Replayer:
    def __init__(self, dockerfile: Dockerfile, context: Path, root: Path,
                 build_args: dict[str, str] | None = None, log=print,
                 base_env: dict[str, str] | None = None):
        self.df = dockerfile
        self.context = Path(context)
        self.root = Path(root)
        self.build_args = build_args or {}
        self.log = log
        self.ignore = DockerIgnore.read(self.context)
        self.base_env = dict(base_env if base_env is not None else os.environ)
        for key in list(self.base_env):
            if key in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") or key.startswith("CHATUI_"):
                del self.base_env[key]

    def map(self, text: str) -> str:
        """Container absolute paths → paths under the replay root."""
        def sub(m: re.Match) -> str:
            path = m.group(0)
            return str(self.root / path.lstrip("/")) + ("/" if path.endswith("/") else "")
        return _ABS_PATH.sub(sub, text)

    def run(self, target: str | None = None) -> Replay:
        states: dict[int, dict] = {}
        ran: list = []
        skipped: list = []
        copied: list = []
        for stage in self.df.needed(target, self.build_args):
            parent = self.df.parent(stage, self.build_args)
            if parent is None:
                label = stage.name or str(stage.index)
                venv = self.root / "_venvs" / label
                t = time.monotonic()
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
                ran.append((label, f"python -m venv  # stands in for FROM {self.df.base_of(stage, self.build_args)}",
                            time.monotonic() - t))
                state = {"venv": venv, "env": {}, "args": {}, "workdir": self.root, "user": "root"}
            else:
                state = dict(states[parent.index])
                state["env"] = dict(state["env"])
                state["args"] = {}
            state["meta"] = {}
            self._stage(stage, state, ran, skipped, copied)
            states[stage.index] = state
        final = self.df.stage(target) if target else self.df.stages[-1]
        st = states[final.index]
        return Replay(root=self.root, env=self._env(st), workdir=st["workdir"],
                      cmd=st["meta"].get("cmd") or [], healthcheck=st["meta"].get("healthcheck"),
                      exposed=st["meta"].get("expose", []), python=st["venv"] / "bin" / "python",
                      ran=ran, skipped=skipped, copied=copied)

    def _env(self, state: dict) -> dict[str, str]:
        env = dict(self.base_env)
        env["PATH"] = f"{state['venv'] / 'bin'}{os.pathsep}{self.base_env.get('PATH', os.defpath)}"
        env.update(state["env"])
        return env

    def _stage(self, stage: Stage, state: dict, ran: list, skipped: list, copied: list) -> None:
        label = stage.name or str(stage.index)
        glob_args = self.df.args(self.build_args)
        for instr in stage.instructions:
            vars_ = {**self._env(state), **state["args"]}
            if instr.cmd == "ARG":
                for k, v in parse_pairs(instr.args).items():
                    state["args"][k] = self.build_args.get(k) or v or glob_args.get(k, "")
            elif instr.cmd == "ENV":
                for k, v in parse_pairs(instr.args).items():
                    state["env"][k] = expand(self.map(v), {**self._env(state), **state["args"]})
            elif instr.cmd == "WORKDIR":
                path = Path(expand(self.map(instr.args), vars_))
                state["workdir"] = path if path.is_absolute() else state["workdir"] / path
                state["workdir"].mkdir(parents=True, exist_ok=True)
            elif instr.cmd == "RUN":
                self._run(label, instr, state, ran, skipped)
            elif instr.cmd == "COPY":
                if instr.flag("from"):
                    raise NotImplementedError(f"line {instr.line}: COPY --from (use a bind mount)")
                self._copy(instr, state, copied)
            elif instr.cmd == "VOLUME":
                vols = instr.exec_form or instr.args.split()
                for v in vols:
                    Path(self.map(v)).mkdir(parents=True, exist_ok=True)
            elif instr.cmd == "USER":
                state["user"] = instr.args
            elif instr.cmd == "EXPOSE":
                state["meta"].setdefault("expose", []).extend(instr.args.split())
            elif instr.cmd == "HEALTHCHECK":
                rest = instr.args
                state["meta"]["healthcheck"] = rest[4:].strip() if rest.upper().startswith("CMD ") else None
            elif instr.cmd == "CMD":
                form = instr.exec_form
                state["meta"]["cmd"] = form if form is not None else ["/bin/sh", "-c", instr.args]
            elif instr.cmd in ("LABEL", "SHELL", "STOPSIGNAL", "ONBUILD", "MAINTAINER"):
                pass
            else:
                raise NotImplementedError(f"line {instr.line}: {instr.cmd} is not replayable")

    def _run(self, label: str, instr: Instruction, state: dict, ran: list, skipped: list) -> None:
        command = instr.args
        if instr.exec_form is not None:
            command = shlex.join(instr.exec_form)
        if classify_run(command) == "system":
            skipped.append((label, command))
            return
        for m in mounts(instr):
            if m.get("type", "bind") == "bind":
                src = self.root / m["source"].lstrip("/")
                dst = self.root / m["target"].lstrip("/")
                dst.parent.mkdir(parents=True, exist_ok=True)
                if dst.is_symlink():
                    dst.unlink()
                if dst.exists():
                    raise RuntimeError(f"mount target {dst} exists")
                dst.symlink_to(src, target_is_directory=True)
            elif m.get("type") not in ("cache", "tmpfs"):
                raise NotImplementedError(f"line {instr.line}: mount {m}")
        mapped = self.map(command)
        env = {**self._env(state), **state["args"]}
        self.log(f"[{label}] RUN {mapped}")
        t = time.monotonic()
        proc = subprocess.run(["/bin/sh", "-c", mapped], cwd=state["workdir"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        elapsed = time.monotonic() - t
        ran.append((label, command, elapsed))
        for m in mounts(instr):
            if m.get("type", "bind") == "bind":
                (self.root / m["target"].lstrip("/")).unlink()
        if proc.returncode != 0:
            raise RuntimeError(f"[{label}] RUN failed ({proc.returncode}) after {elapsed:.0f}s: "
                               f"{command}\n{proc.stdout[-4000:]}")

    def _copy(self, instr: Instruction, state: dict, copied: list) -> None:
        parts = instr.exec_form or shlex.split(instr.args)
        *sources, dest = parts
        dest_path = Path(self.map(dest)) if dest.startswith("/") else state["workdir"] / dest
        to_dir = dest.endswith("/") or len(sources) > 1
        for src in sources:
            src_path = self.context / src
            if self.ignore.ignored(src):
                raise RuntimeError(f"line {instr.line}: COPY source {src} is excluded by .dockerignore")
            if not src_path.exists():
                raise FileNotFoundError(f"line {instr.line}: COPY source {src} is not in the context")
            target = dest_path / src_path.name if (to_dir and src_path.is_file()) else dest_path
            if src_path.is_dir():
                for path in sorted(src_path.rglob("*")):
                    rel = path.relative_to(self.context).as_posix()
                    if path.is_dir() or self.ignore.ignored(rel):
                        continue
                    out = target / path.relative_to(src_path)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, out)
                    copied.append(rel)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src_path, target)
                copied.append(src)
