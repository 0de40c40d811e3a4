"""The leaderboard the Feedback tab shows, from battles voted in a real store."""

from __future__ import annotations

import re

from chatui.arena import board
from chatui.store import Store
from chatui.store.battles import arena_owner


def vote(store, user, models, winner, texts=("one", "two")):
    t = store.begin_battle_turn(user, None, "q", models=models)
    for side, text in zip(t["sides"], texts):
        store.update_message(arena_owner(user), side["assistant_message_id"], content=text,
                             finish_reason="stop")
    store.set_battle_vote(user, t["battle_id"], 1, winner)
    return t


def test_ratings_table_and_win_rate_matrix(tmp_path):
    store = Store(tmp_path / "b.db")
    strong, weak, odd = "strong", "weak", "<b>odd</b>"
    for i in range(12):
        vote(store, f"anon:u{i}", (strong, weak), "model_a" if i < 10 else "model_b")
        vote(store, f"anon:v{i}", (odd, weak), "tie" if i % 2 else "model_a")
    # a vote cast after the names were revealed does not count
    t = vote(store, "anon:late", (weak, strong), "model_a")
    t2 = store.begin_battle_turn("anon:late", t["battle_id"], "again")
    for side in t2["sides"]:
        store.update_message(arena_owner("anon:late"), side["assistant_message_id"],
                             content=side["model"], finish_reason="stop")
    store.set_battle_vote("anon:late", t["battle_id"], 2, "model_a")
    ratings, matrix = board.leaderboard_view(store, bootstrap_rounds=100)
    assert list(ratings.columns) == board.RATING_COLUMNS
    assert list(ratings["model"]) == [strong, odd, weak]
    assert list(ratings["battles"]) == [13, 12, 25]     # 12 + the blind first late vote
    lo, hi = ratings.loc[0, "95% CI"].split(" / ")
    assert re.fullmatch(r"\+\d+", lo) and re.fullmatch(r"-\d+", hi)
    assert ratings.loc[0, "rating"] > 1000 > ratings.loc[2, "rating"]
    # the matrix: names escaped, one shaded cell per pair that met, both directions
    assert "<b>odd</b>" not in matrix and "&lt;b&gt;odd&lt;/b&gt;" in matrix
    cells = re.findall(r"background:rgb\((\d+),(\d+),(\d+)\)", matrix)
    assert len(cells) == 4                               # strong-weak, odd-weak, each way
    row_strong = matrix.split("<tr><th scope='row'>strong</th>")[1].split("</tr>")[0]
    assert "0.77" in row_strong and "n=13" in row_strong  # 10 of 13 (late blind win for weak)
    store.close()


def test_no_votes_gives_an_empty_table_and_a_note(tmp_path):
    store = Store(tmp_path / "e.db")
    ratings, matrix = board.leaderboard_view(store)
    assert ratings.empty and list(ratings.columns) == board.RATING_COLUMNS
    assert "No arena votes yet" in matrix
    store.close()
