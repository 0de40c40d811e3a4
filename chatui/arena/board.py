"""The arena leaderboard as the Feedback tab shows it: a ratings table and a win-rate matrix.

Gradio-free: plain DataFrames and an HTML string. The matrix is an HTML table whose cells are
shaded by the row model's observed share of wins (ties as half) against the column model —
no plotting library (the app keeps matplotlib out: chatui/gradio_overheads.py).
"""

from __future__ import annotations

import html
import math

import pandas as pd

from .leaderboard import Leaderboard, compute_leaderboard

RATING_COLUMNS = ["rank", "model", "rating", "95% CI", "battles", "wins", "losses", "ties"]
EMPTY_NOTE = ("No arena votes yet. Ratings appear once users have voted on battles (votes cast "
              "while the model names were hidden).")


def empty_ratings() -> pd.DataFrame:
    return pd.DataFrame(columns=RATING_COLUMNS)


def ratings_frame(board: Leaderboard) -> pd.DataFrame:
    rows = []
    for r in board.rows:
        ci = ("" if r.lower is None or r.upper is None else
              f"+{r.upper - r.rating:.0f} / -{r.rating - r.lower:.0f}")
        rows.append([r.rank, r.model, round(r.rating), ci, r.battles, r.wins, r.losses,
                     r.ties])
    return pd.DataFrame(rows, columns=RATING_COLUMNS)


def _shade(rate: float) -> str:
    """0 → red, 0.5 → white, 1 → green (light enough for dark text)."""
    t = max(0.0, min(1.0, rate))
    if t < 0.5:
        k = (0.5 - t) * 2
        r, g, b = 255, int(255 - 120 * k), int(255 - 120 * k)
    else:
        k = (t - 0.5) * 2
        r, g, b = int(255 - 120 * k), 255, int(255 - 120 * k)
    return f"rgb({r},{g},{b})"


def win_rate_html(board: Leaderboard) -> str:
    """The observed win-rate matrix (row model vs column model) as a shaded HTML table."""
    if not board.rows:
        return f"<p>{html.escape(EMPTY_NOTE)}</p>"
    models = board.models
    head = "".join(f"<th scope='col'>{html.escape(m)}</th>" for m in models)
    body = []
    for i, a in enumerate(models):
        cells = []
        for j, b in enumerate(models):
            rate = board.observed_win_rate[i, j]
            n = int(board.pair_battles[i, j])
            if i == j or n == 0 or math.isnan(rate):
                cells.append("<td style='background:#eee;color:#888'>–</td>")
                continue
            title = html.escape(f"{a} vs {b}: {rate:.0%} of {n} battle(s) won (ties as half); "
                                f"predicted {board.predicted_win_rate[i, j]:.0%}", quote=True)
            cells.append(f"<td title=\"{title}\" style='background:{_shade(rate)};"
                         f"color:#111;text-align:center'>{rate:.2f}<br><small>n={n}</small></td>")
        body.append(f"<tr><th scope='row'>{html.escape(a)}</th>{''.join(cells)}</tr>")
    return ("<div style='overflow-x:auto'><table id='arena-win-rates' "
            "style='border-collapse:collapse'>"
            "<caption>Share of battles the row model won against the column model "
            "(ties count half)</caption>"
            f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
            "</table></div>")


def leaderboard_view(store, bootstrap_rounds: int = 200, seed: int | None = 0
                     ) -> tuple[pd.DataFrame, str]:
    """(ratings table, win-rate matrix HTML) from the store's blind votes (all users)."""
    outcomes = store.battle_outcomes(anony_only=True)
    if not outcomes:
        return empty_ratings(), win_rate_html(compute_leaderboard([], bootstrap_rounds=0))
    board = compute_leaderboard(outcomes, bootstrap_rounds=bootstrap_rounds, seed=seed)
    return ratings_frame(board), win_rate_html(board)


__all__ = ["RATING_COLUMNS", "leaderboard_view", "ratings_frame", "win_rate_html"]
