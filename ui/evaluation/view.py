"""What the Evaluate tab shows, as plain values: a prompt, one side of a comparison, session
labels, generation progress. No Gradio here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codi.evaluation.pairing import Comparison
from codi.evaluation.spec import PromptItem
from codi.evaluation.store import Cell

OUTPUT_KINDS = ("image", "audio", "video", "text")
#: Rating criteria shown per output (a session with more shows its first ones).
MAX_CRITERIA = 6
#: Answer → (button text, elem_id): the keyboard shortcuts (ui.evaluation.keys) click these.
VOTES = {"A": ("A is better  [1]", "eval-vote-a"), "B": ("B is better  [2]", "eval-vote-b"),
         "tie": ("Tie  [3]", "eval-vote-tie"), "both_bad": ("Both bad  [4]", "eval-vote-both-bad")}
#: Answer → how the vote status line says it.
VERDICTS = {"A": "A is better", "B": "B is better", "tie": "a tie", "both_bad": "both bad"}


def session_label(session: dict[str, Any]) -> str:
    counts = session["counts"]
    return (f"{session['name']} · {session['id']} · {counts['done']}/{session['total']} "
            "generated")


def session_choices(sessions: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, id) pairs for the session picker, newest first."""
    return [(session_label(s), s["id"]) for s in sessions]


def session_markdown(session: dict[str, Any]) -> str:
    spec = session["spec"]
    systems = ", ".join(s["name"] for s in spec["systems"])
    return (f"**{session['name']}** (`{session['id']}`): {len(spec['prompts'])} prompts × "
            f"{len(spec['systems'])} systems ({systems}) × {len(spec['seeds'])} seeds = "
            f"{session['total']} outputs · criteria: {', '.join(spec['criteria'])}")


def prompt_markdown(prompt: PromptItem) -> str:
    """The inputs of a prompt and the outputs asked for; no system names."""
    parts = []
    for item in prompt.inputs:
        value = f"“{item.value}”" if item.modality == "text" else f"`{Path(item.value).name}`"
        weight = "" if item.weight == 1 else f" (weight {item.weight:g})"
        parts.append(f"{item.modality} {value}{weight}")
    return (f"**Prompt {prompt.id}**: {' + '.join(parts)} → "
            f"{', '.join(prompt.outputs)}")


def side_outputs(cell: Cell, data_dir: Path) -> dict[str, str | None]:
    """{image, audio, video: absolute file or None, text: the generated text or None}."""
    shown: dict[str, str | None] = {
        kind: str(data_dir / cell.outputs[kind]) if kind in cell.outputs else None
        for kind in ("image", "audio", "video")}
    texts = cell.metadata.get("texts") or []
    shown["text"] = str(texts[0]) if "text" in cell.outputs and texts else None
    return shown


def comparison_payload(token: str, comparison: Comparison, data_dir: Path,
                       progress: tuple[int, int], criteria: list[str]) -> dict[str, Any]:
    """What `/eval_next` returns: the blind pair (sides A and B), never the system names."""
    prompt = comparison.prompt
    return {
        "token": token,
        "prompt": {"id": prompt.id, "outputs": list(prompt.outputs),
                   "inputs": [{"modality": i.modality, "value": i.value, "weight": i.weight}
                              for i in prompt.inputs]},
        "A": side_outputs(comparison.left, data_dir),
        "B": side_outputs(comparison.right, data_dir),
        "criteria": list(criteria),
        "progress": list(progress),
    }


def progress_markdown(progress: tuple[int, int]) -> str:
    voted, total = progress
    return f"**{voted} / {total}** comparisons judged"


def generation_markdown(state: dict[str, Any]) -> str:
    """"12 / 40 generated · 1 failed · running" with the last message and any failures."""
    line = (f"**{state['done']} / {state['total']}** outputs generated · {state['failed']} "
            f"failed · {state['pending']} pending")
    line += " · **running**" if state["running"] else ""
    lines = [line]
    if state["message"]:
        lines.append(state["message"])
    if state["error"]:
        lines.append(f"**Error:** {state['error']}")
    for failure in state["failures"][:5]:
        lines.append(f"- failed: prompt {failure['prompt_id']}, {failure['system']}, seed "
                     f"{failure['seed']}: {failure['error']}")
    return "\n\n".join(lines)
