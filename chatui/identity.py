"""Who is asking. The server decides; clients only present credentials.

* On a Space with `hf_oauth`, the Hugging Face username (`gr.OAuthProfile`).
* Otherwise an anonymous **bearer token**: 32 random bytes that the browser keeps in
  localStorage (`gr.BrowserState`). The user id is a hash of it, so the database never holds
  the credential, and knowing a conversation id is useless without the owner's token.
"""

from __future__ import annotations

import hashlib
import secrets

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
    token = (token or "").strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise IdentityError("Missing or invalid session token: reload the page.")
    digest = hashlib.sha256(token.encode()).hexdigest()[:32]
    return f"anon:{digest}", "anonymous", "anon"
