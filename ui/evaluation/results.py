"""A session's statistics (codi.evaluation.stats.summary) as a Markdown report and the tables
behind its bar plots."""

from __future__ import annotations

from typing import Any

import pandas as pd


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _interval(row: dict[str, Any], digits: int = 2) -> str:
    if row.get("ci_low") is None:
        return "–"
    return f"{_num(row['ci_low'], digits)}–{_num(row['ci_high'], digits)}"


def _wins_table(wins: dict[str, Any]) -> list[str]:
    lines = ["| system | comparisons | wins | losses | ties | both bad | win rate | 95% CI |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in wins["systems"].items():
        lines.append(f"| {name} | {r['n']} | {r['wins']} | {r['losses']} | {r['ties']} | "
                     f"{r['both_bad']} | {_num(r['win_rate'])} | {_interval(r)} |")
    if len(wins["pairs"]) > 1:
        lines += ["", "| pair | n | first wins | second wins | ties + both bad | first's win "
                      "rate | 95% CI |", "|---|---|---|---|---|---|---|"]
        for r in wins["pairs"]:
            lines.append(f"| {r['system_a']} vs {r['system_b']} | {r['n']} | {r['wins']} | "
                         f"{r['losses']} | {r['ties'] + r['both_bad']} | "
                         f"{_num(r['win_rate'])} | {_interval(r)} |")
    return lines


def _ranking_table(ranking: dict[str, Any]) -> list[str]:
    lines = ["| rank | system | Bradley–Terry (Elo scale) | 95% CI (bootstrap) | Elo |",
             "|---|---|---|---|---|"]
    for r in ranking["systems"]:
        lines.append(f"| {r['rank']} | {r['system']} | {_num(r['score'], 0)} | "
                     f"{_interval(r, 0)} | {_num(r['elo'], 0)} |")
    return lines


def _means_table(means: dict[str, Any], criteria: list[str]) -> list[str]:
    lines = [f"| system | {' | '.join(criteria)} |", f"|---|{'---|' * len(criteria)}"]
    for system, by_criterion in means.items():
        cells = []
        for criterion in criteria:
            m = by_criterion.get(criterion)
            cells.append("–" if not m or m["mean"] is None else
                         f"{m['mean']:.2f} (n={m['n']}, {_interval(m)})")
        lines.append(f"| {system} | {' | '.join(cells)} |")
    return lines


def results_markdown(summary: dict[str, Any]) -> str:
    """Counts, win rates, ranking, criterion means and agreement as Markdown."""
    session = summary["session"]
    lines = [f"**{session['name']}**: {summary['votes']} votes and {summary['ratings']} ratings "
             f"from {len(summary['raters'])} rater(s); {session['counts']['done']} / "
             f"{session['total']} outputs generated."]
    if not summary["votes"] and not summary["ratings"]:
        return "\n".join([*lines, "", "No votes or ratings yet: rate some pairs first."])
    if summary["votes"]:
        lines += ["", "#### Win rates (ties and both-bad count half)", *_wins_table(
            summary["win_rates"])]
        if summary["ranking"]["systems"]:
            lines += ["", "#### Ranking", *_ranking_table(summary["ranking"])]
    if summary["criterion_means"]:
        lines += ["", "#### Mean ratings (1–5)",
                  *_means_table(summary["criterion_means"], summary["criteria"])]
    agree = summary["agreement"]
    lines += ["", "#### Agreement between raters",
              f"- votes: Fleiss' κ = {_num(agree['votes_fleiss_kappa'])} over "
              f"{agree['votes_items']} pairs judged by two or more raters",
              f"- ratings: Krippendorff's α (ordinal) = {_num(agree['ratings_alpha_ordinal'])} "
              f"over {agree['ratings_units']} outputs rated by two or more raters"]
    return "\n".join(lines)


def results_frames(summary: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Tables for the plots: win rate per system, Bradley–Terry strength per system, mean per
    system × criterion."""
    wins = pd.DataFrame([{"system": name, "win rate": r["win_rate"] or 0.0}
                         for name, r in summary["win_rates"]["systems"].items()],
                        columns=["system", "win rate"])
    ranking = pd.DataFrame([{"system": r["system"], "strength": r["strength"] or 0.0}
                            for r in summary["ranking"]["systems"]],
                           columns=["system", "strength"])
    means = pd.DataFrame([{"criterion": criterion, "system": system, "mean": m["mean"]}
                          for system, by in summary["criterion_means"].items()
                          for criterion, m in by.items() if m["mean"] is not None],
                         columns=["criterion", "system", "mean"])
    return wins, ranking, means


def results_view(summary: dict[str, Any]) -> tuple[str, pd.DataFrame, pd.DataFrame,
                                                   pd.DataFrame]:
    """(report, wins, ranking, means)."""
    return (results_markdown(summary), *results_frames(summary))
