"""The Space owner's Feedback tab: votes per model over time and the latest comments."""

from __future__ import annotations

import os

import pandas as pd

from .store import Store


def owners() -> set[str]:
    """HF usernames allowed to see the dashboard when login is on.

    SPACE_AUTHOR_NAME is set by Hugging Face on every Space; CHATUI_ADMINS adds more."""
    names = {n.strip() for n in os.environ.get("CHATUI_ADMINS", "").split(",") if n.strip()}
    if os.environ.get("SPACE_AUTHOR_NAME"):
        names.add(os.environ["SPACE_AUTHOR_NAME"])
    return names


def may_view(login_enabled: bool, profile) -> bool:
    """Without login (self-hosted), whoever reaches the app owns it; with login, owners only."""
    if not login_enabled:
        return True
    username = getattr(profile, "username", None)
    return bool(username) and username in owners()


def stats_frames(store: Store) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(votes per model per day, thumbs-up rate per model per day, latest comments)."""
    rows = store.feedback_stats()
    votes = pd.DataFrame(rows or [], columns=["day", "model", "up", "down"])
    if not votes.empty:
        votes["day"] = pd.to_datetime(votes["day"])
        votes["votes"] = votes["up"] + votes["down"]
        votes["up_rate"] = (votes["up"] / votes["votes"]).round(3)
        votes = votes.sort_values("day")
    else:
        votes = pd.DataFrame({"day": pd.to_datetime([]), "model": [], "up": [], "down": [],
                              "votes": [], "up_rate": []})
    comments = pd.DataFrame([
        {"when": pd.to_datetime(c.get("updated_at") or c.get("created_at"), unit="s"),
         "model": c.get("model"), "vote": "👍" if c.get("label") else "👎",
         "reason": c.get("reason") or "", "comment": c.get("comment") or ""}
        for c in store.latest_comments(20)], columns=["when", "model", "vote", "reason",
                                                      "comment"])
    return votes, votes[["day", "model", "up_rate"]], comments
