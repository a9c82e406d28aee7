"""Statistics of evaluation sessions, on cases that can be checked by hand or from textbooks."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from codi.evaluation import open_store
from codi.evaluation.spec import InputSpec, PromptItem, SessionSpec, SystemSpec
from codi.evaluation.stats import (
    agreement,
    bradley_terry,
    bt_strengths,
    criterion_means,
    fleiss_kappa,
    krippendorff_alpha,
    latest_votes,
    summary,
    wilson_interval,
    win_rates,
)


def vote(rater, a, b, choice, prompt="p0", seed=1, id=None):
    row = {"rater": rater, "prompt_id": prompt, "seed": seed, "system_a": a, "system_b": b,
           "choice": choice}
    return row if id is None else {**row, "id": id}


def rating(rater, system, criterion, score, prompt="p0", seed=1, id=None):
    row = {"rater": rater, "prompt_id": prompt, "seed": seed, "system": system,
           "criterion": criterion, "score": score}
    return row if id is None else {**row, "id": id}


def test_wilson_interval_matches_the_published_case():
    low, high = wilson_interval(8, 10)  # Wilson (1927): 8 of 10 → [0.490, 0.943]
    assert low == pytest.approx(0.4902, abs=5e-4)
    assert high == pytest.approx(0.9433, abs=5e-4)
    assert wilson_interval(0, 10)[0] == 0.0
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_win_rates_count_ties_half_and_keep_the_latest_vote():
    votes = [
        vote("r1", "x", "y", "a", prompt="p1"),
        vote("r2", "y", "x", "b", prompt="p1"),        # x wins, stored the other way round
        vote("r3", "x", "y", "b", prompt="p1"),
        vote("r1", "x", "y", "tie", prompt="p2"),
        vote("r2", "x", "y", "both_bad", prompt="p2"),
        vote("r3", "x", "y", "b", prompt="p2"),
        vote("r3", "y", "x", "b", prompt="p2"),        # r3 changes their mind: x wins
    ]
    assert len(latest_votes(votes)) == 6
    result = win_rates(votes)
    (pair,) = result["pairs"]
    assert (pair["system_a"], pair["system_b"]) == ("x", "y")
    assert (pair["wins"], pair["losses"], pair["ties"], pair["both_bad"]) == (3, 1, 1, 1)
    assert pair["win_rate"] == pytest.approx(4 / 6)
    assert (pair["ci_low"], pair["ci_high"]) == pytest.approx(wilson_interval(4, 6))
    assert result["systems"]["y"]["win_rate"] == pytest.approx(2 / 6)
    assert result["systems"]["x"]["losses"] == 1


def test_bradley_terry_two_systems_is_the_ratio_of_wins():
    votes = [vote(f"r{i}", "a", "b", "a", prompt=f"p{i}") for i in range(30)]
    votes += [vote(f"s{i}", "a", "b", "b", prompt=f"p{i}") for i in range(10)]
    votes += [vote(f"t{i}", "b", "a", "tie", prompt=f"p{i}") for i in range(4)]
    outcomes = np.array([(0, 1, {"a": 1, "b": 0, "tie": 0.5}[v["choice"]]) for v in votes],
                        dtype=float)
    strengths = bt_strengths(outcomes, 2, prior=0)
    assert strengths[0] / strengths[1] == pytest.approx(32 / 12, rel=1e-6)
    random.Random(3).shuffle(votes)  # Elo follows the order of the votes
    ranking = bradley_terry(votes, bootstrap=50)
    assert [row["system"] for row in ranking["systems"]] == ["a", "b"]
    assert ranking["systems"][0]["elo"] > ranking["systems"][1]["elo"]


def test_bradley_terry_recovers_known_strengths_from_simulated_votes():
    truth = {"s0": 1.0, "s1": 2.0, "s2": 4.0, "s3": 8.0}
    rng = random.Random(7)
    names = list(truth)
    votes = []
    for n in range(3000):
        a, b = rng.sample(names, 2)
        won = rng.random() < truth[a] / (truth[a] + truth[b])
        votes.append(vote(f"r{n}", a, b, "a" if won else "b", id=n + 1))
    ranking = bradley_terry(votes, bootstrap=60, seed=1)
    rows = {row["system"]: row for row in ranking["systems"]}
    assert [row["system"] for row in ranking["systems"]] == ["s3", "s2", "s1", "s0"]
    assert [rows[f"s{i}"]["rank"] for i in range(4)] == [4, 3, 2, 1]
    scale = 400 / math.log(10)
    for name in ("s0", "s1", "s2"):
        gap = rows["s3"]["score"] - rows[name]["score"]
        assert gap == pytest.approx(scale * math.log(truth["s3"] / truth[name]), rel=0.15)
        assert rows[name]["ci_low"] < rows[name]["score"] < rows[name]["ci_high"]
    elos = [rows[f"s{i}"]["elo"] for i in range(4)]
    assert elos[3] > elos[0]


def test_criterion_means_use_student_t_and_latest_ratings():
    ratings = [rating("r1", "x", "quality", 4), rating("r2", "x", "quality", 5),
               rating("r3", "x", "quality", 1), rating("r3", "x", "quality", 3),
               rating("r1", "y", "quality", 2)]
    means = criterion_means(ratings)
    x = means["x"]["quality"]
    assert (x["mean"], x["n"], x["sd"]) == pytest.approx((4.0, 3, 1.0))
    assert x["ci_high"] - x["mean"] == pytest.approx(4.303 / math.sqrt(3), rel=1e-4)
    assert means["y"]["quality"]["n"] == 1 and means["y"]["quality"]["ci_low"] is None


def test_fleiss_kappa_on_the_textbook_table():
    # Fleiss (1971) style example as tabulated on Wikipedia: 10 items, 14 raters, κ = 0.210.
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
             [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
             [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(np.array(table)) == pytest.approx(0.210, abs=5e-4)
    assert fleiss_kappa(np.array([[3, 0, 0, 0], [0, 3, 0, 0]])) == pytest.approx(1.0)


def test_krippendorff_alpha_on_the_reference_data():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders, 12 units.
    coders = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
              [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
              [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
              [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
    units = [[c[u] for c in coders if c[u] is not None] for u in range(12)]
    assert krippendorff_alpha(units, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(units, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(units, "interval") == pytest.approx(0.849, abs=5e-4)


def test_agreement_builds_the_fleiss_table_from_votes():
    votes = [vote("r1", "x", "y", "a", prompt="p1"), vote("r2", "y", "x", "b", prompt="p1"),
             vote("r3", "x", "y", "tie", prompt="p1"),
             vote("r1", "x", "y", "b", prompt="p2"), vote("r2", "x", "y", "b", prompt="p2"),
             vote("r3", "x", "y", "both_bad", prompt="p2"),
             vote("r1", "x", "y", "a", prompt="p3")]  # one rater only: not an agreement item
    ratings = [rating(r, "x", "quality", s, prompt=p)
               for p, scores in (("p1", (5, 5, 4)), ("p2", (1, 2, 1)), ("p3", (3, 3, 3)))
               for r, s in zip(("r1", "r2", "r3"), scores, strict=True)]
    result = agreement(votes, ratings)
    expected = fleiss_kappa(np.array([[2, 0, 1, 0], [0, 2, 0, 1]]))
    assert result["votes_items"] == 2
    assert result["votes_fleiss_kappa"] == pytest.approx(expected)
    units = [[5, 5, 4], [1, 2, 1], [3, 3, 3]]
    assert result["ratings_alpha_ordinal"] == pytest.approx(krippendorff_alpha(units))
    assert result["ratings_alpha_by_criterion"]["quality"] == pytest.approx(
        result["ratings_alpha_ordinal"])


def test_summary_of_a_stored_session_is_json(tmp_path):
    store = open_store(tmp_path)
    spec = SessionSpec("s", [PromptItem("p0", [InputSpec("text", "hi")], ["image"])],
                       [SystemSpec("a"), SystemSpec("b"), SystemSpec("c")], [1])
    session_id = store.create_session(spec)
    for cell in store.cells(session_id):
        store.mark_cell(cell.id, "done", {"image": "x.png"}, {})
    store.record_vote(session_id, "ann", "p0", 1, "a", "b", "a")
    store.record_vote(session_id, "ann", "p0", 1, "c", "b", "b")
    store.record_vote(session_id, "bob", "p0", 1, "a", "b", "a")
    store.record_rating(store.cells(session_id)[0].id, "ann", "quality", 4)
    result = json.loads(json.dumps(summary(store, session_id, bootstrap=20)))
    assert result["votes"] == 3 and result["raters"] == ["ann", "bob"]
    assert result["ranking"]["systems"][0]["system"] == "a"
    assert result["win_rates"]["systems"]["b"]["wins"] == 1
    assert result["criterion_means"]["a"]["quality"]["mean"] == 4
    assert result["agreement"]["votes_items"] == 1


def test_bradley_terry_fit_is_the_maximum_likelihood_even_when_strengths_are_far_apart():
    rng = np.random.default_rng(2)
    truth = np.array([1.0, 1e3, 1e6, 1e9])
    pairs = rng.integers(0, 4, size=(800, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    won = rng.random(len(pairs)) < truth[pairs[:, 0]] / truth[pairs].sum(axis=1)
    outcomes = np.column_stack([pairs, won.astype(float)])
    p = bt_strengths(outcomes, 4, prior=0.5)
    assert list(np.argsort(p)) == [0, 1, 2, 3]
    wins = np.zeros((4, 4))
    np.add.at(wins, (pairs[:, 0], pairs[:, 1]), won)
    np.add.at(wins, (pairs[:, 1], pairs[:, 0]), 1 - won)
    wins += 0.25 * (1 - np.eye(4))
    games = wins + wins.T
    expected = (games * p[:, None] / (p[:, None] + p[None, :])).sum(axis=1)
    assert expected == pytest.approx(wins.sum(axis=1), rel=1e-6)  # the likelihood equations
