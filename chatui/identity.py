"""Who is asking. The server decides; clients only present credentials.

* On a Space with `hf_oauth`, the Hugging Face username (`gr.OAuthProfile`).
* Otherwise an anonymous **bearer token**: 32 random bytes that the browser keeps in
  localStorage (`gr.BrowserState`). The user id is a hash of it, so the database never holds
  the credential, and knowing a conversation id is useless without the owner's token.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

MIN_TOKEN_CHARS = 32


class IdentityError(Exception):
    """No usable identity: the request is refused."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def user_from(token: str | None, profile=None) -> tuple[str, str, str]:
    """(user_id, display name, kind) for a request."""
    username = getattr(profile, "username", None) or getattr(profile, "preferred_username", None)
    if username:
        return f"hf:{username}", username, "hf"
    if token is not None and not isinstance(token, str):
        raise IdentityError("The session token must be text: reload the page.")
    token = (token or "").strip()
    try:
        token.encode("ascii")
    except UnicodeEncodeError:
        raise IdentityError("Invalid session token: reload the page.") from None
    if len(token) < MIN_TOKEN_CHARS:
        raise IdentityError("Missing or invalid session token: reload the page.")
    digest = hashlib.sha256(token.encode()).hexdigest()[:32]
    return f"anon:{digest}", "anonymous", "anon"


def browser_secret(data_dir: str | os.PathLike) -> str:
    """The key that encrypts the browser's token in localStorage (gr.BrowserState).

    It must outlive the process: with Gradio's default (a new random key per start) every
    browser loses its identity, and so its whole history, at each restart. From the
    environment (`CHATUI_SECRET`, required when several replicas serve one site), else a
    random key created once in the data folder, readable by this user only."""
    secret = os.environ.get("CHATUI_SECRET", "").strip()
    if secret:
        return secret
    path = Path(data_dir) / ".chatui_secret"
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secret)
    return secret
