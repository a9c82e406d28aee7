"""What a rater judges next: a blind pair of generated outputs, sides drawn at random."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from itertools import combinations

from codi.evaluation.spec import PromptItem
from codi.evaluation.store import Cell, EvaluationStore, normalize_rater

Item = tuple[str, int, str, str]


@dataclass
class Comparison:
    """One blind comparison: `left`/`right` are the two cells as shown; `swapped` is True when
    `left` is `system_b`'s cell. Votes name systems a/b, so map the sides back before voting."""

    session_id: str
    prompt: PromptItem
    seed: int
    system_a: str
    system_b: str
    left: Cell
    right: Cell
    swapped: bool

    @property
    def prompt_id(self) -> str:
        return self.prompt.id

    def choice_for(self, side: str) -> str:
        """The vote choice for a screen answer: left | right | tie | both_bad."""
        if side in ("tie", "both_bad"):
            return side
        if side not in ("left", "right"):
            raise ValueError(f"side {side!r} is not left, right, tie or both_bad")
        return "a" if (side == "left") != self.swapped else "b"


def _ready_items(store: EvaluationStore, session_id: str) -> tuple[list[Item], dict]:
    """(prompt, seed, system_a, system_b) whose two cells are done, in spec order, and the cells."""
    spec = store.spec(session_id)
    done = {(c.prompt_id, c.seed, c.system): c for c in store.cells(session_id, "done")}
    items = [(p.id, seed, a.name, b.name)
             for p in spec.prompts for seed in spec.seeds
             for a, b in combinations(spec.systems, 2)
             if (p.id, seed, a.name) in done and (p.id, seed, b.name) in done]
    return items, done


def _key(prompt_id: str, seed: int, a: str, b: str) -> tuple:
    return prompt_id, seed, frozenset((a, b))


def _vote_keys(store: EvaluationStore, session_id: str, rater: str | None) -> list[tuple]:
    return [_key(v["prompt_id"], v["seed"], v["system_a"], v["system_b"])
            for v in store.votes(session_id) if rater is None or v["rater"] == rater]


def next_comparison(store: EvaluationStore, session_id: str, rater: str,
                    rng: random.Random | None = None) -> Comparison | None:
    """A pair this rater has not voted on (preferring the least-voted pairs overall), sides in
    random order; None when the rater has judged every pair generated so far."""
    rng = rng or random.Random()
    rater = normalize_rater(rater)
    items, done = _ready_items(store, session_id)
    all_votes = Counter(_vote_keys(store, session_id, None))
    mine = set(_vote_keys(store, session_id, rater))
    todo = [item for item in items if _key(*item) not in mine]
    if not todo:
        return None
    counts = {key: all_votes[key] for key in {_key(*item) for item in todo}}
    fewest = min(counts.values())
    prompt_id, seed, a, b = rng.choice([i for i in todo if counts[_key(*i)] == fewest])
    cell_a, cell_b = done[(prompt_id, seed, a)], done[(prompt_id, seed, b)]
    swapped = rng.random() < 0.5
    left, right = (cell_b, cell_a) if swapped else (cell_a, cell_b)
    prompt = store.spec(session_id).prompt(prompt_id)
    return Comparison(session_id, prompt, seed, a, b, left, right, swapped)


def progress(store: EvaluationStore, session_id: str, rater: str) -> tuple[int, int]:
    """(pairs this rater has voted on, pairs generated so far)."""
    rater = normalize_rater(rater)
    items, _ = _ready_items(store, session_id)
    mine = set(_vote_keys(store, session_id, rater))
    return sum(_key(*item) in mine for item in items), len(items)
