"""The Create form as plain values → a `SessionSpec`: prompts (typed, uploaded, from the
studio history), systems (JSON), seeds and criteria. No Gradio here."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from codi.errors import CoDiUserError
from codi.evaluation.spec import (
    DEFAULT_CRITERIA,
    InputSpec,
    PromptItem,
    SessionSpec,
    SystemSpec,
    parse_prompts,
)
from ui.temp_files import scratch_dir

PROMPT_FILE_KINDS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".txt": "lines"}
#: What the Systems box shows on a fresh page: the same model at two step counts.
DEFAULT_SYSTEMS = [
    {"name": "10 steps", "model": "auto", "settings": {"steps": 10}},
    {"name": "25 steps", "model": "auto", "settings": {"steps": 25}},
]


def default_systems_json() -> str:
    return json.dumps(DEFAULT_SYSTEMS, indent=2)


def parse_systems(text: str) -> list[SystemSpec]:
    """A JSON list of {"name", "model"?, "settings"?, "runtime"?} objects."""
    try:
        data = json.loads(text or "[]")
    except ValueError as error:
        raise CoDiUserError(f"Systems: not valid JSON ({error.args[0]}).") from None
    if not isinstance(data, list) or not all(isinstance(s, dict) for s in data):
        raise CoDiUserError('Systems: write a JSON list of objects like {"name": "25 steps", '
                            '"model": "auto", "settings": {"steps": 25}}.')
    known = {"name", "model", "settings", "runtime"}
    for system in data:
        unknown = sorted(set(system) - known)
        if unknown:
            raise CoDiUserError(f"Systems: unknown key(s) {', '.join(unknown)}; use "
                                f"{', '.join(sorted(known))}.")
        if not isinstance(system.get("settings", {}), dict) or not isinstance(
                system.get("runtime", {}), dict):
            raise CoDiUserError("Systems: settings and runtime are JSON objects.")
    return [SystemSpec(**{"model": "auto", **s, "name": str(s.get("name", "")).strip()})
            for s in data]


def parse_seeds(text: str | int | float | None) -> list[int]:
    """"0, 1, 2" (commas or spaces) → [0, 1, 2]."""
    parts = [p for p in re.split(r"[\s,;]+", str(text if text is not None else "")) if p]
    if not parts:
        raise CoDiUserError("Give at least one seed, e.g. 0, 1, 2.")
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise CoDiUserError(f"Seeds are whole numbers, e.g. 0, 1, 2 (got {text!r}).") from None


def parse_criteria(text: str | None) -> list[str]:
    """Comma-separated criteria; the defaults when empty."""
    names = [c.strip() for c in (text or "").split(",") if c.strip()]
    return names or list(DEFAULT_CRITERIA)


def stage_uploads(paths: list[str] | None) -> tuple[Path | None, Path | None]:
    """Copy the uploaded files into one folder (so a prompt file's relative media paths find
    their uploads); returns (the prompt file or None, the folder or None)."""
    if not paths:
        return None, None
    folder = scratch_dir("uploads")
    prompt_files = []
    for path in paths:
        source = Path(path)
        target = folder / source.name
        shutil.copyfile(source, target)
        if source.suffix.lower() in PROMPT_FILE_KINDS:
            prompt_files.append(target)
    if len(prompt_files) > 1:
        shutil.rmtree(folder, ignore_errors=True)
        raise CoDiUserError("Upload one prompt file (.jsonl, .csv or .txt) at a time, with the "
                            "media it names.")
    return (prompt_files[0] if prompt_files else None), folder


def _renumbered(prompts: list[PromptItem], prefix: str) -> list[PromptItem]:
    return [PromptItem(f"{prefix}{n:03d}", p.inputs, p.outputs)
            for n, p in enumerate(prompts, start=1)]


def history_prompts(forms: list[dict[str, Any]]) -> list[PromptItem]:
    """Prompts from studio history entries (their form values): inputs, weights, outputs."""
    from ui.form import request_from_form

    prompts = []
    for n, form in enumerate(forms, start=1):
        request = request_from_form(form)
        inputs = [InputSpec(i.modality, str(i.value), float(i.weight)) for i in request.inputs]
        prompts.append(PromptItem(f"h{n:03d}", inputs, list(request.outputs)))
    return prompts


def collect_prompts(typed: str, prompt_file: Path | None, outputs: list[str],
                    history: list[dict[str, Any]]) -> list[PromptItem]:
    """Typed lines (ids t001, ...), then the uploaded file's prompts (their own ids or p001,
    ...), then the chosen history entries (h001, ...)."""
    outputs = list(outputs or ["image"])
    prompts: list[PromptItem] = []
    if (typed or "").strip():
        prompts += _renumbered(parse_prompts(typed, "lines", outputs=outputs), "t")
    if prompt_file is not None:
        kind = PROMPT_FILE_KINDS[prompt_file.suffix.lower()]
        prompts += parse_prompts(prompt_file, kind, base_dir=prompt_file.parent, outputs=outputs)
    prompts += history_prompts(history)
    if not prompts:
        raise CoDiUserError("Give at least one prompt: type some, upload a JSONL or CSV file, "
                            "or take them from the studio history.")
    return prompts


def build_spec(name: str, typed: str, uploads: list[str] | None, outputs: list[str],
               systems: str, seeds: str, criteria: str,
               history: list[dict[str, Any]] | None = None) -> tuple[SessionSpec, Path | None]:
    """The validated session the form describes and the folder its uploads were staged in
    (the caller removes it; on an error it is removed here)."""
    prompt_file, folder = stage_uploads(uploads)
    try:
        spec = SessionSpec(
            name=(name or "").strip() or "Evaluation session",
            prompts=collect_prompts(typed, prompt_file, outputs, history or []),
            systems=parse_systems(systems),
            seeds=parse_seeds(seeds),
            criteria=parse_criteria(criteria),
        )
        spec.validate()
    except Exception:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return spec, folder
