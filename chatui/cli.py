"""``python -m chatui <command> ...`` — the project's command line.

Each subcommand lives in its own module, which provides::

    HELP: str                                          # one line for ``--help``
    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int           # exit status

and is registered by one line in `COMMANDS` below (name → module path), e.g.
``"space": "chatui.space"`` for a future ``python -m chatui space build``. A module that needs
its own sub-subcommands simply adds subparsers in its ``add_arguments``. Modules are imported
only when their command runs (``--help`` imports them to read ``HELP``), so a heavy or broken
command never slows down or breaks the others. `register` adds a command at run time (tests,
plugins).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

COMMANDS: dict[str, str] = {
    "export": "chatui.export",
    "space": "chatui.space",
    "config-docs": "chatui.config_docs",
}


def register(name: str, module: str) -> None:
    """Register (or replace) subcommand ``name`` implemented by ``module``."""
    COMMANDS[name] = module


def _load(module: str) -> ModuleType:
    mod = importlib.import_module(module)
    for attr in ("add_arguments", "run"):
        if not callable(getattr(mod, attr, None)):
            raise TypeError(f"command module {module} has no {attr}()")
    return mod


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chatui",
                                     description="Chat UI command line.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        if only is not None and name != only:
            # Cheap placeholder: listed in --help without importing the module.
            sub.add_parser(name, help=f"(see python -m chatui {name} --help)", add_help=False)
            continue
        try:
            mod = _load(module)
        except Exception as e:  # keep the other commands usable
            sub.add_parser(name, help=f"(unavailable: {e})")
            continue
        p = sub.add_parser(name, help=getattr(mod, "HELP", None),
                           description=getattr(mod, "HELP", None))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=wanted if wanted in COMMANDS else None)
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        parser.error(f"command {args.command!r} is unavailable (see --help)")
    return int(run(args) or 0)
