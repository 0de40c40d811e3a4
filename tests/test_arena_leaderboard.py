"""The arena leaderboard's maths on synthetic battles drawn from known strengths.

Pure numpy, no app: each test runs in milliseconds. The reference fit below is written
independently of chatui.arena.leaderboard (Zermelo's / Hunter's MM iteration over the raw
battle list in plain Python), so an error in the aggregation or in the Newton fit shows up.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from chatui.arena.leaderboard import aggregate, compute_leaderboard, fit_ratings

TRUE = {"alpha": 1250.0, "bravo": 1150.0, "charlie": 1080.0, "delta": 1000.0,
        "echo": 930.0, "foxtrot": 800.0}


def draw_battles(n: int, seed: int, true=TRUE, tie_prob: float = 0.0, bothbad_share=0.5):
    """n battles between random distinct pairs; the winner drawn from the Bradley–Terry
    probability of the true ratings; with probability tie_prob the battle is a tie instead."""
    rng = np.random.default_rng(seed)
    names = list(true)
    k = len(names)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    out = []
    for i, j, u, t, bb in zip(a, b, rng.random(n), rng.random(n), rng.random(n)):
        p_a = 1.0 / (1.0 + 10 ** ((true[names[j]] - true[names[i]]) / 400))
        if t < tie_prob:
            winner = "tie (bothbad)" if bb < bothbad_share else "tie"
        else:
            winner = "model_a" if u < p_a else "model_b"
        out.append({"model_a": names[i], "model_b": names[j], "winner": winner,
                    "turn": 1, "tstamp": 0.0})
    return out


def reference_ratings(battles, iterations=20000):
    """Maximum likelihood by the MM iteration (Hunter 2004), ties as half a win each way;
    mean rating 1000 on the base-10 / scale-400 scale."""
    wins: dict[str, float] = {}
    met: dict[tuple[str, str], float] = {}
    for b in battles:
        a, c, w = b["model_a"], b["model_b"], b["winner"]
        wins.setdefault(a, 0.0)
        wins.setdefault(c, 0.0)
        if w == "model_a":
            wins[a] += 1
        elif w == "model_b":
            wins[c] += 1
        else:
            wins[a] += 0.5
            wins[c] += 0.5
        met[(a, c)] = met.get((a, c), 0.0) + 1
        met[(c, a)] = met.get((c, a), 0.0) + 1
    pi = {m: 1.0 for m in wins}
    for _ in range(iterations):
        new = {}
        for m in pi:
            denom = sum(cnt / (pi[m] + pi[o]) for (x, o), cnt in met.items() if x == m)
            new[m] = wins[m] / denom
        g = math.exp(sum(math.log(v) for v in new.values()) / len(new))
        new = {m: v / g for m, v in new.items()}
        change = max(abs(math.log(new[m] / pi[m])) for m in pi)
        pi = new
        if change < 1e-13:
            break
    return {m: 1000 + 400 * math.log10(v) for m, v in pi.items()}


def centred(ratings: dict[str, float]) -> dict[str, float]:
    mean = sum(ratings.values()) / len(ratings)
    return {m: r - mean + 1000 for m, r in ratings.items()}


def test_fitted_order_matches_true_order_and_ratings_are_close():
    battles = draw_battles(20_000, seed=1)
    lb = compute_leaderboard(battles, bootstrap_rounds=0)
    assert lb.models == tuple(sorted(TRUE, key=TRUE.get, reverse=True))
    truth = centred(TRUE)
    for model, rating in lb.ratings.items():
        assert rating == pytest.approx(truth[model], abs=25), model
    assert sum(lb.ratings.values()) / len(TRUE) == pytest.approx(1000, abs=1e-9)
    assert [r.rank for r in lb.rows] == list(range(1, 7))


@pytest.mark.parametrize("l2, tol", [(0.0, 1e-6), (1e-3, 0.05)])
def test_ratings_agree_with_reference_mm_fit(l2, tol):
    battles = draw_battles(3_000, seed=2, tie_prob=0.25)
    ref = reference_ratings(battles)
    ours = fit_ratings(battles, l2=l2)
    assert set(ours) == set(ref)
    for model in ref:
        assert ours[model] == pytest.approx(ref[model], abs=tol), model


def test_ratings_agree_with_scipy_when_installed():
    optimize = pytest.importorskip("scipy.optimize")
    battles = draw_battles(2_000, seed=3, tie_prob=0.1)
    names = sorted({b["model_a"] for b in battles} | {b["model_b"] for b in battles})
    ix = {m: i for i, m in enumerate(names)}
    a = np.array([ix[b["model_a"]] for b in battles])
    c = np.array([ix[b["model_b"]] for b in battles])
    y = np.array([{"model_a": 1.0, "model_b": 0.0}.get(b["winner"], 0.5) for b in battles])

    def nll(r):  # per battle, in rating points: y log p + (1-y) log(1-p)
        d = (r[a] - r[c]) * math.log(10) / 400
        return -(y * -np.logaddexp(0, -d) + (1 - y) * -np.logaddexp(0, d)).sum()

    res = optimize.minimize(nll, np.zeros(len(names)), method="BFGS", options={"gtol": 1e-8})
    ref = {m: res.x[i] - res.x.mean() + 1000 for m, i in ix.items()}
    ours = fit_ratings(battles, l2=0.0)
    for model in ref:
        assert ours[model] == pytest.approx(ref[model], abs=0.01), model


def test_ties_count_as_half_a_win_each_way():
    # a beat b once and they tied twice: score a 2, b 1 -> P(a beats b) = 2/3.
    battles = [("a", "b", "model_a"), ("a", "b", "tie"), ("b", "a", "tie (bothbad)")]
    r = fit_ratings(battles, l2=0.0)
    assert r["a"] - r["b"] == pytest.approx(400 * math.log10(2), abs=1e-6)
    assert r["a"] + r["b"] == pytest.approx(2000, abs=1e-9)
    # Only ties: equal ratings; a "tie (bothbad)" weighs the same as a "tie".
    even = fit_ratings([("a", "b", "tie"), ("b", "a", "tie (bothbad)")], l2=0.0)
    assert even["a"] == pytest.approx(even["b"], abs=1e-9)
    lb = compute_leaderboard(battles, bootstrap_rounds=0)
    row = {x.model: x for x in lb.rows}
    assert (row["a"].wins, row["a"].losses, row["a"].ties, row["a"].battles) == (1, 0, 2, 3)
    assert (row["b"].wins, row["b"].losses, row["b"].ties, row["b"].battles) == (0, 1, 2, 3)
    counts = aggregate(battles)
    assert counts.bothbad.sum() == 2 and counts.ties.sum() == 4 and counts.total == 3


def test_a_model_without_battles_is_absent_and_counts_are_per_model():
    battles = [("a", "b", "model_a"), ("b", "c", "model_b"), ("c", "a", "tie"),
               ("a", "b", "model_b")]
    lb = compute_leaderboard(battles, bootstrap_rounds=50)
    assert set(lb.models) == {"a", "b", "c"}
    assert "d" not in lb.ratings
    assert {r.model: r.battles for r in lb.rows} == {"a": 3, "b": 3, "c": 2}
    assert sum(r.battles for r in lb.rows) == 2 * len(battles)
    with pytest.raises(ValueError, match="anchor"):
        compute_leaderboard(battles, anchor="d", bootstrap_rounds=0)
    empty = compute_leaderboard([], bootstrap_rounds=10)
    assert empty.rows == () and empty.records() == []


def test_bootstrap_intervals_contain_the_estimate_and_narrow_with_more_data():
    small = compute_leaderboard(draw_battles(2_000, seed=4), bootstrap_rounds=300, seed=7)
    large = compute_leaderboard(draw_battles(20_000, seed=5), bootstrap_rounds=300, seed=7)
    for lb in (small, large):
        for r in lb.rows:
            assert r.lower < r.rating < r.upper, r
    width = {lb_name: np.mean([r.upper - r.lower for r in lb.rows])
             for lb_name, lb in (("small", small), ("large", large))}
    # Ten times the battles: about sqrt(10) = 3.2 times narrower.
    assert width["large"] < width["small"] / 2.2
    assert 3 < width["large"] < 40
    # The true ratings fall inside the large sample's intervals (within 1.5 widths: 6 models).
    truth = centred(TRUE)
    for r in large.rows:
        half = (r.upper - r.lower) / 2
        assert abs(truth[r.model] - r.rating) < 3 * half, r


def test_deterministic_with_a_seed():
    battles = draw_battles(3_000, seed=6, tie_prob=0.2)
    one = compute_leaderboard(battles, bootstrap_rounds=200, seed=11)
    two = compute_leaderboard(list(reversed(battles)), bootstrap_rounds=200, seed=11)
    other = compute_leaderboard(battles, bootstrap_rounds=200, seed=12)
    assert one.records() == two.records()
    assert [(r.lower, r.upper) for r in one.rows] == [(r.lower, r.upper) for r in two.rows]
    assert [(r.lower, r.upper) for r in one.rows] != [(r.lower, r.upper) for r in other.rows]
    assert one.ratings == other.ratings  # the point estimate does not depend on the seed
    for r in one.rows:  # with ties in the resampled cells too
        assert r.lower < r.rating < r.upper, r


def test_win_rate_matrices_for_the_plot():
    battles = [("a", "b", "model_a")] * 3 + [("b", "a", "model_a"), ("a", "b", "tie")] + \
              [("b", "c", "model_a")] * 2 + [("c", "b", "model_a")] * 2
    lb = compute_leaderboard(battles, bootstrap_rounds=0)
    order = {m: i for i, m in enumerate(lb.models)}
    obs = lb.observed_win_rate
    a, b, c = order["a"], order["b"], order["c"]
    assert obs[a, b] == pytest.approx(3.5 / 5) and obs[b, a] == pytest.approx(1.5 / 5)
    assert obs[b, c] == pytest.approx(0.5)
    assert math.isnan(obs[a, c]) and math.isnan(obs[a, a])  # never met / itself
    assert lb.pair_battles[a, b] == 5 and lb.pair_battles[a, c] == 0
    long = {(r["model"], r["opponent"]): r for r in lb.win_rate_records()}
    assert len(long) == 4 and ("a", "c") not in long  # a and c never met
    assert long[("a", "b")]["win_rate"] == pytest.approx(0.7) and long[("a", "b")]["battles"] == 5
    pred = lb.predicted_win_rate
    assert np.allclose(pred + pred.T, 1.0) and np.allclose(np.diag(pred), 0.5)
    ra, rb = lb.ratings["a"], lb.ratings["b"]
    assert pred[a, b] == pytest.approx(1 / (1 + 10 ** ((rb - ra) / 400)))


def test_anchor_pins_one_model_and_keeps_the_differences():
    battles = draw_battles(2_000, seed=8)
    mean_anchored = fit_ratings(battles)
    pinned = fit_ratings(battles, anchor="delta")
    assert pinned["delta"] == 1000.0
    shift = mean_anchored["delta"] - 1000.0
    for m in TRUE:
        assert pinned[m] == pytest.approx(mean_anchored[m] - shift, abs=1e-9)
    lb = compute_leaderboard(battles, anchor="delta", bootstrap_rounds=100)
    delta = next(r for r in lb.rows if r.model == "delta")
    assert delta.lower == delta.upper == 1000.0  # pinned in every round


def test_undefeated_model_and_separate_groups_stay_finite():
    battles = [("champ", "x", "model_a")] * 5 + [("x", "y", "model_a"), ("y", "x", "model_a"),
                                                 ("p", "q", "model_b"), ("q", "p", "tie")]
    lb = compute_leaderboard(battles, bootstrap_rounds=100)
    assert lb.models[0] == "champ"
    assert all(math.isfinite(r.rating) for r in lb.rows)
    assert all(r.lower is not None and math.isfinite(r.lower) for r in lb.rows)


def test_plain_mle_survives_a_split_graph_and_rounds_missing_a_model():
    # l2=0: two groups that never met, and a model with one battle that many bootstrap
    # rounds do not draw. No LinAlgError; the rare model has no rating in those rounds only.
    battles = [("a", "b", "model_a"), ("b", "a", "model_a"), ("a", "b", "tie")] * 20 + \
              [("c", "d", "model_a"), ("d", "c", "model_a")] * 20 + [("a", "rare", "tie")]
    lb = compute_leaderboard(battles, l2=0.0, bootstrap_rounds=200, seed=1)
    assert set(lb.models) == {"a", "b", "c", "d", "rare"}
    assert all(math.isfinite(r.rating) and r.lower <= r.upper for r in lb.rows)


def test_battles_as_rows_from_the_store_or_a_dataframe():
    import sqlite3

    battles = draw_battles(500, seed=9, tie_prob=0.2)
    expected = fit_ratings(battles)
    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    db.execute("CREATE TABLE battles (id INTEGER, model_a TEXT, model_b TEXT, winner TEXT)")
    db.executemany("INSERT INTO battles VALUES (?, ?, ?, ?)",
                   [(k, b["model_a"], b["model_b"], b["winner"]) for k, b in enumerate(battles)])
    rows = db.execute("SELECT * FROM battles").fetchall()
    assert fit_ratings(rows) == pytest.approx(expected)
    pd = pytest.importorskip("pandas")
    assert fit_ratings(pd.DataFrame(battles)) == pytest.approx(expected)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="unknown winner"):
        aggregate([("a", "b", "a")])
    with pytest.raises(ValueError, match="itself"):
        aggregate([{"model_a": "a", "model_b": "a", "winner": "tie"}])
