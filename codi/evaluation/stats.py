"""Results of a session: win rates, Bradley–Terry and Elo rankings, criterion means, agreement.

Votes and ratings are append-only; every statistic reads only the latest vote of a rater on an
item (prompt × seed × system pair) and the latest rating of a rater on a cell and criterion.
"both_bad" counts as a tie wherever wins are counted. NumPy only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from codi.evaluation.store import EvaluationStore

Z95 = 1.959963984540054
#: Two-sided 95% Student t quantiles for 1..30 degrees of freedom (beyond: the normal's 1.96).
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
       2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
       2.052, 2.048, 2.045, 2.042)
ELO_BASE, ELO_K, ELO_SCALE = 1000.0, 32.0, 400.0
VOTE_CATEGORIES = ("a", "b", "tie", "both_bad")


def _number(value: float) -> float | None:
    """A JSON-safe float: NaN and infinities become None."""
    value = float(value)
    return value if math.isfinite(value) else None


# -- latest votes and ratings -------------------------------------------------------------------

def vote_item(vote: dict[str, Any]) -> tuple[str, int, str, str]:
    """(prompt, seed, first system, second system), the pair in name order."""
    first, second = sorted((vote["system_a"], vote["system_b"]))
    return vote["prompt_id"], vote["seed"], first, second


def oriented_choice(vote: dict[str, Any]) -> str:
    """The vote's choice relative to `vote_item`'s order (a = the first system by name)."""
    choice = vote["choice"]
    if vote["system_a"] > vote["system_b"] and choice in ("a", "b"):
        return "b" if choice == "a" else "a"
    return choice


def latest_votes(votes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last vote of each rater on each item (by id, else list order)."""
    ordered = sorted(enumerate(votes), key=lambda iv: (iv[1].get("id", iv[0]), iv[0]))
    latest = {(v["rater"], vote_item(v)): v for _, v in ordered}
    return list(latest.values())


def latest_ratings(ratings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last rating of each rater on each cell and criterion."""
    ordered = sorted(enumerate(ratings), key=lambda ir: (ir[1].get("id", ir[0]), ir[0]))
    latest = {(r["rater"], r["prompt_id"], r["system"], r["seed"], r["criterion"]): r
              for _, r in ordered}
    return list(latest.values())


# -- win rates ----------------------------------------------------------------------------------

def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (successes may be fractional: ties as half)."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _record(wins: int, losses: int, ties: int, both_bad: int) -> dict[str, Any]:
    n = wins + losses + ties + both_bad
    score = wins + 0.5 * (ties + both_bad)
    low, high = wilson_interval(score, n)
    return {"n": n, "wins": wins, "losses": losses, "ties": ties, "both_bad": both_bad,
            "win_rate": _number(score / n if n else math.nan), "ci_low": _number(low),
            "ci_high": _number(high)}


def win_rates(votes: list[dict[str, Any]]) -> dict[str, Any]:
    """{"pairs": [...], "systems": {name: ...}}: wins, losses, ties, both_bad, n, win rate (ties
    and both_bad count half) and its Wilson 95% interval. A pair's record is its first system's
    (by name); a system's record pools all its comparisons."""
    pairs: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(
        VOTE_CATEGORIES, 0))
    for vote in latest_votes(votes):
        _, _, first, second = vote_item(vote)
        pairs[(first, second)][oriented_choice(vote)] += 1
    systems: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    rows = []
    for (first, second), c in sorted(pairs.items()):
        rows.append({"system_a": first, "system_b": second,
                     **_record(c["a"], c["b"], c["tie"], c["both_bad"])})
        for name, won, lost in ((first, c["a"], c["b"]), (second, c["b"], c["a"])):
            totals = systems[name]
            totals[0] += won
            totals[1] += lost
            totals[2] += c["tie"]
            totals[3] += c["both_bad"]
    return {"pairs": rows, "systems": {name: _record(*t) for name, t in sorted(systems.items())}}


# -- Bradley–Terry and Elo ----------------------------------------------------------------------

def _outcomes(votes: list[dict[str, Any]], names: list[str]) -> np.ndarray:
    """(k, 3) array: first index, second index, score of the first (1, 0 or 0.5)."""
    index = {name: i for i, name in enumerate(names)}
    score = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}
    return np.array([(index[v["system_a"]], index[v["system_b"]], score[v["choice"]])
                     for v in votes], dtype=float).reshape(-1, 3)


def bt_strengths(outcomes: np.ndarray, count: int, prior: float = 0.5, mm_steps: int = 50,
                 tolerance: float = 1e-10) -> np.ndarray:
    """Bradley–Terry strengths (maximum likelihood), geometric mean 1: Hunter's MM iterations,
    finished with Newton steps on the log-strengths (MM alone crawls when strengths differ by
    orders of magnitude).

    `prior` adds that many virtual tied comparisons to every pair, which keeps strengths finite
    when a system never wins (or never loses) and links systems never compared directly.
    """
    wins = np.zeros((count, count))
    i, j, s = outcomes[:, 0].astype(int), outcomes[:, 1].astype(int), outcomes[:, 2]
    np.add.at(wins, (i, j), s)
    np.add.at(wins, (j, i), 1 - s)
    wins += (prior / 2) * (1 - np.eye(count))
    games = wins + wins.T
    total_wins = wins.sum(axis=1)
    if not np.all(total_wins > 0) or not np.all(games.sum(axis=1) > total_wins):
        raise ValueError("every system needs a win and a loss (use prior > 0)")
    p = np.ones(count)
    for _ in range(mm_steps):
        updated = total_wins / (games / (p[:, None] + p[None, :])).sum(axis=1)
        updated /= np.exp(np.mean(np.log(updated)))
        converged = np.max(np.abs(updated - p) / p) < tolerance
        p = updated
        if converged:
            return p
    theta = np.log(p)
    for _ in range(100):
        win_prob = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))
        gradient = total_wins - (games * win_prob).sum(axis=1)
        weights = games * win_prob * (1 - win_prob)
        laplacian = np.diag(weights.sum(axis=1)) - weights
        step = np.clip(np.linalg.lstsq(laplacian, gradient, rcond=None)[0], -2, 2)
        theta = theta + step - np.mean(step)
        if np.max(np.abs(step)) < tolerance:
            break
    return np.exp(theta - np.mean(theta))


def elo_ratings(outcomes: np.ndarray, count: int, k: float = ELO_K) -> np.ndarray:
    """Online Elo over the outcomes in order, starting at 1000."""
    ratings = np.full(count, ELO_BASE)
    for i, j, s in outcomes:
        i, j = int(i), int(j)
        expected = 1 / (1 + 10 ** ((ratings[j] - ratings[i]) / ELO_SCALE))
        ratings[i] += k * (s - expected)
        ratings[j] -= k * (s - expected)
    return ratings


def bradley_terry(votes: list[dict[str, Any]], bootstrap: int = 200, seed: int = 0,
                  prior: float = 0.5) -> dict[str, Any]:
    """The ranking: Bradley–Terry strengths (MM) on the Elo scale (1000 + 400·log10 strength)
    with bootstrap 95% intervals, and online Elo (K = 32, votes in order). Best first."""
    votes = sorted(latest_votes(votes), key=lambda v: v.get("id", 0))
    names = sorted({v["system_a"] for v in votes} | {v["system_b"] for v in votes})
    if len(names) < 2:
        return {"systems": [], "votes": len(votes), "bootstrap": 0}
    outcomes = _outcomes(votes, names)
    strengths = bt_strengths(outcomes, len(names), prior)
    rng = np.random.default_rng(seed)
    samples = np.array([
        bt_strengths(outcomes[rng.integers(0, len(outcomes), len(outcomes))], len(names), prior)
        for _ in range(bootstrap)]).reshape(bootstrap, len(names))
    elo = elo_ratings(outcomes, len(names))
    scale = ELO_SCALE / math.log(10)
    rows = []
    for i, name in enumerate(names):
        low, high = ((np.percentile(np.log(samples[:, i]), [2.5, 97.5]) * scale + ELO_BASE)
                     if bootstrap else (math.nan, math.nan))
        rows.append({"system": name, "strength": _number(strengths[i]),
                     "score": _number(ELO_BASE + scale * math.log(strengths[i])),
                     "ci_low": _number(low), "ci_high": _number(high), "elo": _number(elo[i])})
    rows.sort(key=lambda r: -r["score"])
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return {"systems": rows, "votes": len(votes), "bootstrap": bootstrap}


# -- ratings ------------------------------------------------------------------------------------

def mean_interval(values: list[float]) -> dict[str, float | None]:
    """Mean, n, sample standard deviation and the Student t 95% interval of the mean."""
    n = len(values)
    if n == 0:
        return {"mean": None, "n": 0, "sd": None, "ci_low": None, "ci_high": None}
    mean = float(np.mean(values))
    if n == 1:
        return {"mean": mean, "n": 1, "sd": None, "ci_low": None, "ci_high": None}
    sd = float(np.std(values, ddof=1))
    half = (T95[n - 2] if n - 1 <= len(T95) else Z95) * sd / math.sqrt(n)
    return {"mean": mean, "n": n, "sd": sd, "ci_low": mean - half, "ci_high": mean + half}


def criterion_means(ratings: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{system: {criterion: {mean, n, sd, ci_low, ci_high}}} over the latest ratings."""
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rating in latest_ratings(ratings):
        groups[rating["system"]][rating["criterion"]].append(float(rating["score"]))
    return {system: {criterion: mean_interval(values)
                     for criterion, values in sorted(by_criterion.items())}
            for system, by_criterion in sorted(groups.items())}


# -- agreement ----------------------------------------------------------------------------------

def fleiss_kappa(table: np.ndarray) -> float:
    """Fleiss' kappa of an items × categories count table (rows may have different rater
    counts, each ≥ 2). NaN when chance agreement is total."""
    table = np.asarray(table, dtype=float)
    raters = table.sum(axis=1)
    if len(table) == 0 or np.any(raters < 2):
        return math.nan
    per_item = ((table * table).sum(axis=1) - raters) / (raters * (raters - 1))
    proportions = table.sum(axis=0) / raters.sum()
    chance = float((proportions ** 2).sum())
    if chance >= 1:
        return math.nan
    return (float(per_item.mean()) - chance) / (1 - chance)


def krippendorff_alpha(units: list[list[float]], level: str = "ordinal") -> float:
    """Krippendorff's alpha of units (each: the values its coders gave; units with fewer than two
    values are not pairable and are left out). level: nominal | ordinal | interval."""
    units = [list(u) for u in units if len(u) >= 2]
    values = sorted({v for u in units for v in u})
    if len(values) < 2:
        return math.nan
    index = {v: i for i, v in enumerate(values)}
    coincidence = np.zeros((len(values), len(values)))
    for unit in units:
        counts = np.zeros(len(values))
        for v in unit:
            counts[index[v]] += 1
        coincidence += (np.outer(counts, counts) - np.diag(counts)) / (len(unit) - 1)
    marginals = coincidence.sum(axis=1)
    n = marginals.sum()
    delta = _alpha_distance(np.array(values, dtype=float), marginals, level)
    observed = (coincidence * delta).sum()
    expected = (np.outer(marginals, marginals) * delta).sum() / (n - 1)
    return math.nan if expected == 0 else 1 - observed / expected


def _alpha_distance(values: np.ndarray, marginals: np.ndarray, level: str) -> np.ndarray:
    if level == "nominal":
        return 1 - np.eye(len(values))
    if level == "interval":
        return (values[:, None] - values[None, :]) ** 2
    if level != "ordinal":
        raise ValueError(f"level {level!r} is not nominal, ordinal or interval")
    cumulative = np.cumsum(marginals)
    c, k = np.meshgrid(np.arange(len(values)), np.arange(len(values)), indexing="ij")
    low, high = np.minimum(c, k), np.maximum(c, k)
    between = cumulative[high] - cumulative[low] + marginals[low]
    return (between - (marginals[c] + marginals[k]) / 2) ** 2


def agreement(votes: list[dict[str, Any]], ratings: list[dict[str, Any]]) -> dict[str, Any]:
    """Fleiss' kappa on the A/B votes of items judged by ≥2 raters (categories a, b, tie,
    both_bad, in name order), and ordinal Krippendorff's alpha on the 1–5 ratings per criterion
    and overall (units: one cell on one criterion)."""
    by_item: dict[tuple, list[str]] = defaultdict(list)
    for vote in latest_votes(votes):
        by_item[vote_item(vote)].append(oriented_choice(vote))
    table = np.array([[choices.count(c) for c in VOTE_CATEGORIES]
                      for choices in by_item.values() if len(choices) >= 2]).reshape(-1, 4)
    units: dict[str, dict[tuple, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rating in latest_ratings(ratings):
        unit = (rating["prompt_id"], rating["system"], rating["seed"], rating["criterion"])
        units[rating["criterion"]][unit].append(float(rating["score"]))
    per_criterion = {criterion: _number(krippendorff_alpha(list(u.values())))
                     for criterion, u in sorted(units.items())}
    pooled = [values for u in units.values() for values in u.values()]
    return {"votes_fleiss_kappa": _number(fleiss_kappa(table)) if len(table) else None,
            "votes_items": len(table),
            "ratings_alpha_ordinal": _number(krippendorff_alpha(pooled)),
            "ratings_alpha_by_criterion": per_criterion,
            "ratings_units": sum(len(v) >= 2 for v in pooled)}


def summary(store: EvaluationStore, session_id: str, bootstrap: int = 200) -> dict[str, Any]:
    """The session's results, JSON-serialisable: counts, win rates, ranking, criterion means
    and agreement."""
    info = store.session(session_id)
    votes, ratings = store.votes(session_id), store.ratings(session_id)
    current = latest_votes(votes)
    return {
        "session": {key: info[key] for key in ("id", "name", "created_at", "counts", "total")},
        "systems": [system["name"] for system in info["spec"]["systems"]],
        "criteria": info["spec"]["criteria"],
        "votes": len(current), "vote_rows": len(votes),
        "ratings": len(latest_ratings(ratings)), "rating_rows": len(ratings),
        "raters": sorted({v["rater"] for v in votes} | {r["rater"] for r in ratings}),
        "win_rates": win_rates(votes),
        "ranking": bradley_terry(votes, bootstrap=bootstrap),
        "criterion_means": criterion_means(ratings),
        "agreement": agreement(votes, ratings),
    }

