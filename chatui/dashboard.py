"""The operator's Feedback tab: votes per model over time and the latest comments.

Who may see it (checked on the server at every load, never by hiding a tab alone):

* login on (``space.hf_oauth``): the Space owner and ``CHATUI_ADMINS`` (their HF login);
* login off (the default, also on a public Space): whoever enters the admin token from the
  environment variable ``CHATUI_ADMIN_TOKEN``. Without that variable nobody can. "Requests
  from loopback" is deliberately not a way in: behind a reverse proxy on the same host every
  visitor comes from loopback.

The events are ``api_visibility="private"``, but Gradio still runs a private event for anyone
who posts its ``fn_index`` (that is how the browser calls it), so the check lives inside the
handler: a call without the right token or login gets empty frames.
"""

from __future__ import annotations

import hmac
import logging
import os

import gradio as gr
import pandas as pd

from .arena import board as arena_board
from .store import Store

log = logging.getLogger("chatui.dashboard")

ADMIN_TOKEN_ENV = "CHATUI_ADMIN_TOKEN"
MIN_TOKEN_LENGTH = 16  # a short token could be guessed through the (unauthenticated) UI
COMMENT_COLUMNS = ["time (UTC)", "model", "vote", "reason", "comment"]
# Fixed pixel widths (Gradio takes px or %): the time and "vote" never wrap, at 1440 px the
# table fills the tab, and on a phone it scrolls sideways instead of squeezing columns to
# one letter per line (percentages gave "vo/te" at 390 px).
COMMENT_WIDTHS = ["180px", "150px", "90px", "110px", "440px"]
TIME_FORMAT = "%Y-%m-%d %H:%M"
EXPORT_HELP = ("Export training data: `python -m chatui export --format "
               "kto|dpo|pairwise|conversations --out data.jsonl`")


# -- who may view ---------------------------------------------------------------------------

def owners() -> set[str]:
    """HF usernames allowed to see the dashboard when login is on.

    SPACE_AUTHOR_NAME is set by Hugging Face on every Space; CHATUI_ADMINS adds more."""
    names = {n.strip() for n in os.environ.get("CHATUI_ADMINS", "").split(",") if n.strip()}
    if os.environ.get("SPACE_AUTHOR_NAME"):
        names.add(os.environ["SPACE_AUTHOR_NAME"])
    return names


def admin_token() -> str | None:
    """The configured admin token, or None when unset or too short to be a secret."""
    value = os.environ.get("CHATUI_ADMIN_TOKEN", "").strip()
    return value if len(value) >= MIN_TOKEN_LENGTH else None


def token_ok(given: object) -> bool:
    """Constant-time comparison with the configured token; False when none is configured."""
    expected = admin_token()
    if expected is None or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8"))


def may_view(login_enabled: bool, profile, token: object = None) -> bool:
    """With login: owners only. Without: only with the admin token."""
    if login_enabled:
        username = getattr(profile, "username", None)
        return bool(username) and username in owners()
    return token_ok(token)


def tab_visible(login_enabled: bool, profile) -> bool:
    """Without login everybody sees the (locked) tab, to be able to enter the token."""
    return not login_enabled or may_view(True, profile)


def status_text(login_enabled: bool, token: object, allowed: bool) -> str:
    """One line above the dashboard saying what is shown, or how to get in."""
    if allowed:
        return "Votes and comments from all users. Times are UTC."
    if login_enabled:
        return ("Only the Space owner and the users in `CHATUI_ADMINS` can see feedback: "
                "sign in with one of those accounts.")
    if os.environ.get("CHATUI_ADMIN_TOKEN", "").strip() and admin_token() is None:
        return (f"`{ADMIN_TOKEN_ENV}` is too short: use at least {MIN_TOKEN_LENGTH} random "
                "characters and restart the app.")
    if admin_token() is None:
        return ("The feedback dashboard is off. To turn it on, set the environment variable "
                f"`{ADMIN_TOKEN_ENV}` to a long random secret (for example the output of "
                "`python -c \"import secrets; print(secrets.token_urlsafe(24))\"`; on a Space: "
                "Settings → Variables and secrets → New secret), restart the app and enter "
                "it here.")
    if isinstance(token, str) and token.strip():
        return "That is not the admin token."
    return f"Enter the admin token (`{ADMIN_TOKEN_ENV}`) to see votes and comments."


# -- data ---------------------------------------------------------------------------------------

def _fmt_time(ts) -> str:
    if ts is None:
        return ""
    return pd.to_datetime(ts, unit="s", utc=True).strftime(TIME_FORMAT)


def empty_frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    votes = pd.DataFrame({"day": pd.Series([], dtype=str), "model": pd.Series([], dtype=str),
                          "up": pd.Series([], dtype=int), "down": pd.Series([], dtype=int),
                          "votes": pd.Series([], dtype=int),
                          "up_rate": pd.Series([], dtype=float)})
    return votes, votes[["day", "model", "up_rate"]], pd.DataFrame(columns=COMMENT_COLUMNS)


def stats_frames(store: Store) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(votes per model per day, thumbs-up rate per model per day, latest comments).

    ``day`` is a "YYYY-MM-DD" string: the plots treat it as a category, so a single day still
    gets a bar and a point (a line through one point draws nothing)."""
    rows = store.feedback_stats()
    if not rows:
        votes = empty_frames()[0]
    else:
        votes = pd.DataFrame(rows, columns=["day", "model", "up", "down"])
        votes["day"] = votes["day"].astype(str)
        votes["model"] = votes["model"].replace("", "(unknown)")
        votes["votes"] = votes["up"] + votes["down"]
        votes["up_rate"] = (votes["up"] / votes["votes"]).round(3)
        votes = votes.sort_values(["day", "model"]).reset_index(drop=True)
    comments = pd.DataFrame([
        [_fmt_time(c.get("updated_at") or c.get("created_at")), c.get("model") or "",
         "👍 up" if c.get("label") else "👎 down", c.get("reason") or "",
         c.get("comment") or ""]
        for c in store.latest_comments(20)], columns=COMMENT_COLUMNS)
    return votes, votes[["day", "model", "up_rate"]], comments


# -- the tab --------------------------------------------------------------------------------------

def build_feedback_tab(store: Store, login: bool) -> gr.Tab:
    """The Feedback tab and its events; call inside ``gr.Tabs()``. Returns the tab, whose
    visibility the page-load event sets per user (`tab_visible`)."""
    with gr.Tab("Feedback", visible=not login, elem_id="feedback-tab") as tab:
        status = gr.Markdown(status_text(login, None, False), elem_id="feedback-status")
        with gr.Row(equal_height=True, visible=not login and admin_token() is not None,
                    elem_id="feedback-unlock"):
            token = gr.Textbox(type="password", label="Admin token", show_label=False,
                               placeholder="Admin token", max_lines=1, scale=4,
                               elem_id="admin-token")
            unlock = gr.Button("Unlock", size="sm", scale=0, min_width=90,
                               elem_id="feedback-unlock-button")
        refresh = gr.Button("Refresh", size="sm", elem_id="feedback-refresh")
        votes0, rates0, comments0 = empty_frames()
        with gr.Column(visible=False, elem_id="feedback-data") as data:
            votes_plot = gr.BarPlot(votes0, x="day", y="votes", color="model",
                                    title="Votes per day", x_title="day (UTC)", y_title="votes",
                                    elem_id="feedback-votes")
            rate_plot = gr.ScatterPlot(rates0, x="day", y="up_rate", color="model",
                                       title="Thumbs-up rate", x_title="day (UTC)",
                                       y_title="thumbs-up rate", y_lim=[-0.05, 1.05],
                                       elem_id="feedback-rate")
            comments_table = gr.Dataframe(comments0, headers=COMMENT_COLUMNS,
                                          datatype=["str"] * len(COMMENT_COLUMNS),
                                          column_widths=COMMENT_WIDTHS, label="Latest comments",
                                          interactive=False, wrap=True,
                                          elem_id="latest-comments")
            # Arena (issue 12): Bradley–Terry ratings from blind battle votes, 95% intervals.
            arena_ratings = gr.Dataframe(arena_board.empty_ratings(), interactive=False,
                                         label="Arena leaderboard (Bradley–Terry, Elo scale)",
                                         elem_id="arena-leaderboard")
            arena_matrix = gr.HTML(elem_id="arena-win-matrix")
            gr.Markdown(EXPORT_HELP)

    def load(admin: str | None, profile: gr.OAuthProfile | None = None):
        allowed = may_view(login, profile, admin)
        if not allowed and not login and isinstance(admin, str) and admin.strip():
            log.warning("feedback dashboard: wrong admin token entered")
        if allowed:
            frames = (*stats_frames(store), *arena_board.leaderboard_view(store))
        else:  # also wipes what an earlier unlock showed
            frames = (*empty_frames(), arena_board.empty_ratings(), "")
        return (status_text(login, admin, allowed), gr.Column(visible=allowed), *frames)

    # Load on open and on every unlock/refresh; each call checks the token or login again.
    outputs = [status, data, votes_plot, rate_plot, comments_table, arena_ratings, arena_matrix]
    for trigger in (tab.select, unlock.click, token.submit, refresh.click):
        trigger(load, [token], outputs, api_visibility="private", queue=False,
                show_progress="hidden")
    return tab
