"""Bradley–Terry leaderboard from arena battles, as the Chatbot Arena notebook computes it.

Input: battles in the Chatbot Arena layout — mappings (or 3-tuples) with ``model_a``,
``model_b`` and ``winner`` in ``model_a | model_b | tie | tie (bothbad)``; other keys are ignored.

The model: P(i beats j) = 1 / (1 + base ** ((R_j - R_i) / scale)), fitted by maximum likelihood
(logistic regression on battle outcomes). A tie of either kind counts as half a win each way —
the notebook duplicates every battle and lets a tie win once for each side, which has the same
maximum. Ratings are shown on the Elo-like scale (base 10, scale 400) and anchored so that the
**mean rating of the models is 1000** by default, or so that one chosen ``anchor`` model sits at
1000 (the notebook pins one reference model; pass ``anchor=`` for that).

Why it is fast: battles are first aggregated into counts per ordered pair, so the fit works on
an n×n matrix whatever the number of battles (100,000 battles fit in tens of milliseconds,
mostly the aggregation), by Newton's method with backtracking. The bootstrap resamples battles
with replacement as one multinomial draw over the (pair, outcome) cells per round, and fits all
rounds together with batched Newton steps.

A weak Gaussian prior (``l2``, default 1e-3 on the natural-log scale) keeps every rating finite
when a model has won (or lost) all its battles, and centres groups of models that never met one
another; with hundreds of battles per model its effect is far below 0.01 rating points. Pass
``l2=0`` for the plain maximum-likelihood estimate (it needs a connected comparison graph in which
every model has both won and lost, or the maximum does not exist).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
TIES = ("tie", "tie (bothbad)")

# Bootstrap rounds are fitted in chunks so the batched Hessians stay small in memory
# (chunk × n × n floats).
_CHUNK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class BattleCounts:
    """Battles aggregated per pair. Models sorted by name; index i is ``models[i]``.

    ``wins[i, j]``: battles model i won against model j. ``ties[i, j]`` (symmetric): ties of
    either kind between them; ``bothbad[i, j]`` the subset that were "tie (bothbad)".
    """

    models: tuple[str, ...]
    wins: np.ndarray
    ties: np.ndarray
    bothbad: np.ndarray

    @property
    def score(self) -> np.ndarray:
        """Wins with ties counted as half a win each way: what the likelihood sees."""
        return self.wins + 0.5 * self.ties

    @property
    def pair_battles(self) -> np.ndarray:
        """Battles between each pair (symmetric, zero diagonal)."""
        return self.wins + self.wins.T + self.ties

    @property
    def total(self) -> int:
        return int(self.wins.sum() + np.triu(self.ties).sum())


@dataclass(frozen=True)
class Rating:
    """One leaderboard row. ``lower``/``upper``: the bootstrap 95% interval (None without one)."""

    rank: int
    model: str
    rating: float
    lower: float | None
    upper: float | None
    battles: int
    wins: int
    losses: int
    ties: int


@dataclass(frozen=True)
class Leaderboard:
    """Ratings sorted best first, plus the matrices a win-rate plot needs (in the same order)."""

    rows: tuple[Rating, ...]
    # observed_win_rate[i, j]: share of battles between models i and j that i won, ties as half;
    # NaN where they never met (and on the diagonal).
    observed_win_rate: np.ndarray
    # predicted_win_rate[i, j]: P(i beats j) under the fitted ratings (0.5 on the diagonal).
    predicted_win_rate: np.ndarray
    pair_battles: np.ndarray
    bootstrap_rounds: int
    anchor: str | None = None
    params: dict = field(default_factory=dict)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(r.model for r in self.rows)

    @property
    def ratings(self) -> dict[str, float]:
        return {r.model: r.rating for r in self.rows}

    def win_rate_records(self) -> list[dict]:
        """The win-rate matrix in long form for a plot (one row per ordered pair that met):
        row model, column model, observed and predicted share won by the row model, battles."""
        out = []
        for i, a in enumerate(self.models):
            for j, b in enumerate(self.models):
                if i != j and self.pair_battles[i, j] > 0:
                    out.append({"model": a, "opponent": b,
                                "win_rate": float(self.observed_win_rate[i, j]),
                                "predicted": float(self.predicted_win_rate[i, j]),
                                "battles": int(self.pair_battles[i, j])})
        return out

    def records(self) -> list[dict]:
        """Plain rows for a table (e.g. a gr.Dataframe), ratings rounded for display."""
        out = []
        for r in self.rows:
            out.append({
                "rank": r.rank, "model": r.model, "rating": round(r.rating, 1),
                "ci_lower": None if r.lower is None else round(r.lower, 1),
                "ci_upper": None if r.upper is None else round(r.upper, 1),
                "battles": r.battles, "wins": r.wins, "losses": r.losses, "ties": r.ties,
            })
        return out


def _fields(battle) -> tuple[str, str, str]:
    """(model_a, model_b, winner) from a 3-tuple/list, or anything indexable by those keys
    (dict, sqlite3.Row, a pandas row), or an object with those attributes."""
    if isinstance(battle, (tuple, list)):
        model_a, model_b, winner = battle
        return model_a, model_b, winner
    if isinstance(battle, Mapping) or hasattr(battle, "keys"):
        return battle["model_a"], battle["model_b"], battle["winner"]
    return battle.model_a, battle.model_b, battle.winner


def aggregate(battles: Iterable) -> BattleCounts:
    """Count battles per ordered pair and outcome. Raises ValueError on an unknown ``winner``
    or a model battling itself (neither carries information; both point at a bug upstream)."""
    if hasattr(battles, "columns") and hasattr(battles, "to_dict"):  # a pandas DataFrame
        battles = battles[["model_a", "model_b", "winner"]].itertuples(index=False, name=None)
    counter = Counter(_fields(b) for b in battles)
    names = set()
    for (a, b, winner), _ in counter.items():
        if winner not in WINNERS:
            raise ValueError(f"unknown winner {winner!r} (expected one of {', '.join(WINNERS)})")
        if a == b:
            raise ValueError(f"model {a!r} battles itself")
        names.update((a, b))
    models = tuple(sorted(names))
    index = {m: i for i, m in enumerate(models)}
    n = len(models)
    wins = np.zeros((n, n), dtype=np.int64)
    ties = np.zeros((n, n), dtype=np.int64)
    bothbad = np.zeros((n, n), dtype=np.int64)
    for (a, b, winner), count in counter.items():
        i, j = index[a], index[b]
        if winner == "model_a":
            wins[i, j] += count
        elif winner == "model_b":
            wins[j, i] += count
        else:
            ties[i, j] += count
            ties[j, i] += count
            if winner == "tie (bothbad)":
                bothbad[i, j] += count
                bothbad[j, i] += count
    return BattleCounts(models, wins, ties, bothbad)


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def _objective(theta: np.ndarray, score: np.ndarray, l2: float) -> np.ndarray:
    """Penalised log-likelihood per batch row. theta (B, n), score (B, n, n)."""
    diff = theta[:, :, None] - theta[:, None, :]
    return (score * _log_sigmoid(diff)).sum(axis=(1, 2)) - 0.5 * l2 * (theta ** 2).sum(axis=1)


def fit_bt(score: np.ndarray, *, l2: float = 1e-3, tol: float = 1e-10,
           max_iter: int = 100) -> np.ndarray:
    """Bradley–Terry strengths (natural-log scale, mean zero) maximising the penalised likelihood.

    ``score`` is (n, n) or a batch (B, n, n): score[i, j] = wins of i over j, ties as half each
    way. Newton's method with backtracking on each batch row; the Hessian is the weighted graph
    Laplacian (plus l2), made invertible in the mean direction by adding 11ᵀ — the optimum has
    mean zero, and every step keeps it there (the gradient sums to zero at mean-zero theta).
    """
    score = np.asarray(score, dtype=float)
    single = score.ndim == 2
    if single:
        score = score[None]
    batch, n, _ = score.shape
    theta = np.zeros((batch, n))
    if n == 0:
        return theta[0] if single else theta
    pairs = score + score.transpose(0, 2, 1)
    ones = np.ones((n, n))
    eye = np.eye(n)
    f = _objective(theta, score, l2)
    active = np.ones(batch, dtype=bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        th, sc, pr = theta[idx], score[idx], pairs[idx]
        p = 1.0 / (1.0 + np.exp(-(th[:, :, None] - th[:, None, :])))  # P(i beats j)
        grad = (sc - pr * p).sum(axis=2) - l2 * th
        q = pr * p * (1.0 - p)
        # The 1e-9 ridge only keeps the solve defined when l2 == 0 and the comparison graph is
        # split (e.g. a bootstrap round that drew no battle of one model): along such a
        # direction the likelihood is flat and the gradient is zero, so the step stays ~0.
        hess = q.sum(axis=2)[:, :, None] * eye - q + (l2 + 1e-9) * eye + ones
        step = np.linalg.solve(hess, grad[:, :, None])[:, :, 0]
        # Backtracking: halve the step of each row until its objective does not decrease.
        t = np.ones(idx.size)
        f_old = f[idx]
        f_new = _objective(th + step, sc, l2)
        for _ in range(40):
            bad = f_new < f_old - 1e-12 * np.abs(f_old)
            if not bad.any():
                break
            t[bad] *= 0.5
            f_new[bad] = _objective(th[bad] + t[bad, None] * step[bad], sc[bad], l2)
        theta[idx] = th + t[:, None] * step
        f[idx] = f_new
        done = (np.abs(t[:, None] * step).max(axis=1) < tol) | (np.abs(grad).max(axis=1) < tol)
        active[idx[done]] = False
    return theta[0] if single else theta


def _bootstrap_scores(counts: BattleCounts, rounds: int, rng: np.random.Generator):
    """Resample battles with replacement: one multinomial draw over the (pair, outcome) cells
    per round, turned back into score matrices. Yields (score batch, pair-battle batch) chunks."""
    n = len(counts.models)
    iu, ju = np.triu_indices(n, 1)
    # Cells: i beat j, j beat i, tie — for every unordered pair that met.
    cell_counts = np.concatenate([counts.wins[iu, ju], counts.wins[ju, iu], counts.ties[iu, ju]])
    flat_ij, flat_ji = iu * n + ju, ju * n + iu
    keep = cell_counts > 0
    total = int(cell_counts.sum())
    # Where each cell adds to the flattened score matrix, and by how much (a tie: half each way).
    m = iu.size
    cell_of = np.flatnonzero(keep)
    kind = cell_of // max(m, 1)
    pair = cell_of % max(m, 1)
    primary = np.where(kind == 1, flat_ji[pair], flat_ij[pair])
    weight = np.where(kind == 2, 0.5, 1.0)
    tie_cells = kind == 2
    pvals = cell_counts[keep] / total
    chunk = max(1, _CHUNK_BYTES // (8 * max(n * n, 1) * 4))
    for start in range(0, rounds, chunk):
        size = min(chunk, rounds - start)
        draws = rng.multinomial(total, pvals, size=size).astype(float)  # (size, cells)
        offsets = (np.arange(size) * n * n)[:, None]
        idx = (offsets + primary[None, :]).ravel()
        vals = (draws * weight[None, :]).ravel()
        score = np.bincount(idx, weights=vals, minlength=size * n * n)
        if tie_cells.any():
            tie_idx = (offsets + flat_ji[pair[tie_cells]][None, :]).ravel()
            tie_vals = (draws[:, tie_cells] * 0.5).ravel()
            score += np.bincount(tie_idx, weights=tie_vals, minlength=size * n * n)
        score = score.reshape(size, n, n)
        yield score, score + score.transpose(0, 2, 1)


def compute_leaderboard(battles: Iterable | BattleCounts, *, bootstrap_rounds: int = 1000,
                        seed: int | None = 0, base: float = 10.0, scale: float = 400.0,
                        init_rating: float = 1000.0, anchor: str | None = None,
                        l2: float = 1e-3, confidence: float = 0.95) -> Leaderboard:
    """Fit the leaderboard. Only models that appear in a battle are ranked.

    ``bootstrap_rounds=0`` skips the intervals (lower/upper are None). ``seed`` makes the
    bootstrap reproducible. With ``anchor``, that model is pinned at ``init_rating``; otherwise the
    mean rating is. A model that a bootstrap round happens not to draw is left out of that round's
    percentiles (its strength is undefined there) rather than counted at the mean.
    """
    counts = battles if isinstance(battles, BattleCounts) else aggregate(battles)
    models = counts.models
    n = len(models)
    if anchor is not None and anchor not in models:
        raise ValueError(f"anchor model {anchor!r} has no battles")
    params = {"base": base, "scale": scale, "init_rating": init_rating, "l2": l2,
              "confidence": confidence, "seed": seed, "battles": counts.total}
    if n == 0:  # no battles yet: an empty board, not NaN warnings
        empty = np.zeros((0, 0))
        return Leaderboard(rows=(), observed_win_rate=empty, predicted_win_rate=empty,
                           pair_battles=empty.astype(np.int64), bootstrap_rounds=0,
                           anchor=anchor, params=params)
    factor = scale / math.log(base)  # natural-log strength -> rating points

    def to_ratings(theta: np.ndarray) -> np.ndarray:
        ratings = theta * factor
        if anchor is not None:
            ratings = ratings - ratings[..., [models.index(anchor)]]
        else:
            ratings = ratings - ratings.mean(axis=-1, keepdims=True)
        return ratings + init_rating

    score = counts.score
    theta = fit_bt(score, l2=l2)
    ratings = to_ratings(theta)

    lower = upper = None
    if bootstrap_rounds > 0:
        rng = np.random.default_rng(seed)
        samples = []
        for boot_score, boot_pairs in _bootstrap_scores(counts, bootstrap_rounds, rng):
            boot = to_ratings(fit_bt(boot_score, l2=l2))
            absent = boot_pairs.sum(axis=2) == 0
            if anchor is not None:
                absent |= absent[:, [models.index(anchor)]]  # no anchor: nothing to pin
            boot[absent] = np.nan
            samples.append(boot)
        boot_all = np.concatenate(samples)
        alpha = (1.0 - confidence) / 2.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: no interval
            lower = np.nanquantile(boot_all, alpha, axis=0)
            upper = np.nanquantile(boot_all, 1.0 - alpha, axis=0)

    pair_battles = counts.pair_battles
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.where(pair_battles > 0, score / pair_battles, np.nan)
    np.fill_diagonal(observed, np.nan)
    predicted = 1.0 / (1.0 + base ** ((ratings[None, :] - ratings[:, None]) / scale))

    order = sorted(range(n), key=lambda i: (-ratings[i], models[i]))
    wins_per = counts.wins.sum(axis=1)
    losses_per = counts.wins.sum(axis=0)
    ties_per = counts.ties.sum(axis=1)
    rows = []
    for rank, i in enumerate(order, start=1):
        lo = None if lower is None or np.isnan(lower[i]) else float(lower[i])
        hi = None if upper is None or np.isnan(upper[i]) else float(upper[i])
        rows.append(Rating(rank=rank, model=models[i], rating=float(ratings[i]), lower=lo,
                           upper=hi, battles=int(wins_per[i] + losses_per[i] + ties_per[i]),
                           wins=int(wins_per[i]), losses=int(losses_per[i]),
                           ties=int(ties_per[i])))
    perm = np.array(order, dtype=int)
    sub = np.ix_(perm, perm)
    return Leaderboard(
        rows=tuple(rows), observed_win_rate=observed[sub], predicted_win_rate=predicted[sub],
        pair_battles=pair_battles[sub], bootstrap_rounds=bootstrap_rounds, anchor=anchor,
        params=params,
    )


def fit_ratings(battles: Iterable | BattleCounts, **kwargs) -> dict[str, float]:
    """Point ratings only (no bootstrap): {model: rating}."""
    kwargs.setdefault("bootstrap_rounds", 0)
    return compute_leaderboard(battles, **kwargs).ratings


__all__ = ["WINNERS", "BattleCounts", "Leaderboard", "Rating", "aggregate", "compute_leaderboard",
           "fit_bt", "fit_ratings"]
