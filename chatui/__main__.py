"""``python -m chatui`` — see chatui/cli.py for the subcommands and how to add one."""

import sys

from chatui.cli import main

sys.exit(main())
