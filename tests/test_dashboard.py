"""The owner's Feedback tab: numbers from a real SQLite store; who may see it."""

from types import SimpleNamespace

from chatui import dashboard
from chatui.store import Store


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
    assert dashboard.may_view(False, None)  # self-hosted without login
    assert dashboard.may_view(True, SimpleNamespace(username="owner"))
    assert dashboard.may_view(True, SimpleNamespace(username="helper"))
    assert not dashboard.may_view(True, SimpleNamespace(username="visitor"))
    assert not dashboard.may_view(True, None)
