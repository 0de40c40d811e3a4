"""README's first two commands are the contract with newcomers and CI: keep them honest."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text, re.S)[:2]


def test_ci_runs_the_readme_test_command_verbatim():
    run_cmd, test_cmd = readme_commands()
    assert "pytest" in test_cmd and "app.py" in run_cmd
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd.strip() in [line.strip() for line in ci]


def test_install_commands_carry_the_portable_llama_build_flags():
    for cmd in readme_commands():
        assert '-DGGML_NATIVE=OFF' in cmd and "pip install" in cmd
