"""The owner's Feedback tab: numbers from a real SQLite store; who may see it."""

from types import SimpleNamespace

import pandas as pd

from chatui import dashboard
from chatui.store import Store

TOKEN = "op-" + "s3cret" * 4


def test_stats_frames_count_votes_per_model(tmp_path):
    store = Store(tmp_path / "s.db")
    for model, labels in {"a": [True, True, False], "b": [False]}.items():
        conv = store.create_conversation("u1", "t", model)
        for i, label in enumerate(labels):
            store.add_message("u1", conv, "user", f"q{i}")
            mid = store.add_message("u1", conv, "assistant", f"answer {i}", model=model)
            store.set_feedback("u1", mid, label, reason=None if label else "incorrect",
                               comment="meh" if not label else None)
    votes, rates, comments = dashboard.stats_frames(store)
    by_model = {r.model: r for r in votes.itertuples()}
    assert (by_model["a"].up, by_model["a"].down, by_model["a"].votes) == (2, 1, 3)
    assert abs(by_model["a"].up_rate - 0.667) < 1e-3 and by_model["b"].up_rate == 0
    assert list(rates.columns) == ["day", "model", "up_rate"]
    assert len(comments) == 2 and set(comments["reason"]) == {"incorrect"}
    store.close()


def test_empty_store_gives_empty_frames(tmp_path):
    store = Store(tmp_path / "e.db")
    votes, rates, comments = dashboard.stats_frames(store)
    assert votes.empty and rates.empty and comments.empty
    store.close()


def test_dashboard_is_owner_only_when_login_is_on(monkeypatch):
    monkeypatch.setenv("SPACE_AUTHOR_NAME", "owner")
    monkeypatch.setenv("CHATUI_ADMINS", "helper, other")
    monkeypatch.setenv("CHATUI_ADMIN_TOKEN", TOKEN)
    assert dashboard.may_view(True, SimpleNamespace(username="owner"))
    # With login, the admin token is no way around the owner list.
    assert not dashboard.may_view(True, SimpleNamespace(username="visitor"), TOKEN)
    assert dashboard.tab_visible(True, SimpleNamespace(username="owner"))
    assert not dashboard.tab_visible(True, None)
    assert dashboard.may_view(True, SimpleNamespace(username="helper"))
    assert not dashboard.may_view(True, SimpleNamespace(username="visitor"))
    assert not dashboard.may_view(True, None)


def test_without_login_only_the_admin_token_opens_the_dashboard(monkeypatch):
    monkeypatch.delenv("CHATUI_ADMIN_TOKEN", raising=False)
    # Nothing configured: nobody, whatever they send; the tab itself stays visible (locked).
    assert not dashboard.may_view(False, None)
    assert not dashboard.may_view(False, None, "")
    assert dashboard.tab_visible(False, None)
    assert "CHATUI_ADMIN_TOKEN" in dashboard.status_text(False, None, False)
    monkeypatch.setenv("CHATUI_ADMIN_TOKEN", TOKEN)
    assert dashboard.may_view(False, None, TOKEN)
    assert dashboard.may_view(False, None, f"  {TOKEN}\n")  # pasted with whitespace
    for wrong in (None, "", TOKEN[:-1], TOKEN + "x", TOKEN.upper(), 12345, ["x"], "\udcff",
                  "é" * 30):
        assert not dashboard.may_view(False, None, wrong), wrong
    assert dashboard.status_text(False, "nope", False) == "That is not the admin token."


def test_a_short_admin_token_is_refused_and_the_tab_says_so(monkeypatch):
    monkeypatch.setenv("CHATUI_ADMIN_TOKEN", "abc123")
    assert dashboard.admin_token() is None
    assert not dashboard.may_view(False, None, "abc123")
    assert "too short" in dashboard.status_text(False, "abc123", False)


def test_token_check_is_constant_time(monkeypatch):
    """hmac.compare_digest, not ==: the comparison must not leak the matching prefix."""
    calls = []
    real = dashboard.hmac.compare_digest
    monkeypatch.setattr(dashboard.hmac, "compare_digest",
                        lambda a, b: calls.append((a, b)) or real(a, b))
    monkeypatch.setenv("CHATUI_ADMIN_TOKEN", TOKEN)
    assert dashboard.token_ok(TOKEN) and not dashboard.token_ok("x" * 20)
    assert len(calls) == 2


def test_comment_table_has_headers_and_minute_times(tmp_path):
    store = Store(tmp_path / "c.db")
    conv = store.create_conversation("u1", "t", "m1")
    store.add_message("u1", conv, "user", "q")
    mid = store.add_message("u1", conv, "assistant", "a", model="m1")
    store.set_feedback("u1", mid, False, reason="unsafe", comment="rude answer")
    _, _, comments = dashboard.stats_frames(store)
    assert list(comments.columns) == ["time (UTC)", "model", "vote", "reason", "comment"]
    row = comments.iloc[0].to_dict()
    # "2026-12-02 14:03": minutes, no seconds or nanoseconds, as text (no Timestamp to
    # serialise with nanoseconds).
    assert isinstance(row["time (UTC)"], str)
    assert pd.Timestamp(row["time (UTC)"]).strftime("%Y-%m-%d %H:%M") == row["time (UTC)"]
    assert len(row["time (UTC)"]) == 16
    assert row["vote"] == "👎 down" and row["reason"] == "unsafe"
    assert row["comment"] == "rude answer" and row["model"] == "m1"
    store.close()


def test_one_day_of_votes_is_one_category_per_plot(tmp_path):
    """A single day must still draw: the day is a category (a string), not a timestamp on a
    line that needs two points."""
    store = Store(tmp_path / "d.db")
    conv = store.create_conversation("u1", "t", "m1")
    store.add_message("u1", conv, "user", "q")
    mid = store.add_message("u1", conv, "assistant", "a", model="m1")
    store.set_feedback("u1", mid, True)
    votes, rates, _ = dashboard.stats_frames(store)
    assert len(rates) == 1 and rates.iloc[0]["up_rate"] == 1.0
    day = rates.iloc[0]["day"]
    assert isinstance(day, str) and len(day) == 10 and pd.Timestamp(day).hour == 0
    store.close()


def test_the_tab_uses_a_scatter_plot_and_table_headers():
    import gradio as gr

    with gr.Blocks() as demo, gr.Tabs():
        tab = dashboard.build_feedback_tab(None, login=False)
    comps = list(demo.blocks.values())
    assert any(isinstance(c, gr.ScatterPlot) and c.y == "up_rate" for c in comps)
    table = next(c for c in comps if isinstance(c, gr.Dataframe))
    assert table.value["headers"] == dashboard.COMMENT_COLUMNS
    assert table.column_widths and table.column_widths[2] != "auto"
    # Every dashboard event is private and loads on tab select as well as on buttons.
    deps = [d for d in demo.fns.values() if d.name == "load"]
    assert len(deps) == 4 and all(d.api_visibility == "private" for d in deps)
    assert any(t[0] == tab._id and t[1] == "select" for d in deps for t in d.targets)
