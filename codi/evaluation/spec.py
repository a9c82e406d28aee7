"""What an evaluation session compares: prompts × systems × seeds, checked up front.

A *system* is a model plus setting overrides (e.g. 25 vs 50 steps, fp16 vs int8). Prompts come
typed in, from the studio history, or from a JSONL / CSV / one-prompt-per-line file.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from codi.errors import CoDiUserError
from codi.pipeline.request import MODALITIES

DEFAULT_CRITERIA = ("quality", "faithfulness", "cross-modal consistency")
#: Prompt ids name media folders and appear in exports: short, file-name safe.
PROMPT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_NAME = 64
#: Settings that the session, not the system, decides (one seed per cell, one sample per output).
SESSION_OWNED_SETTINGS = ("seed", "num_samples")
PromptKind = Literal["jsonl", "csv", "lines"]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise CoDiUserError(message)


@dataclass
class InputSpec:
    """One input of a prompt: text, or a media file path (relative to the data folder once the
    session is stored)."""

    modality: str
    value: str
    weight: float = 1.0


@dataclass
class PromptItem:
    """One row of the prompt set: its inputs and the outputs to generate."""

    id: str
    inputs: list[InputSpec]
    outputs: list[str]


@dataclass
class SystemSpec:
    """A system under comparison: a model ("auto", "embedded", "nano", "tiny" or a folder),
    overrides of `GenerationSettings` (steps, guidance_scale, cross_modal, image_size, ...) and of
    `RuntimeOptions` (dtype, quantize, ...)."""

    name: str
    model: str = "auto"
    settings: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)

    def generation_settings(self, seed: int):
        """The `GenerationSettings` of this system for one seed."""
        from codi.pipeline.request import GenerationSettings, TextDecoding

        values = dict(self.settings)
        if isinstance(values.get("text_decoding"), dict):
            values["text_decoding"] = TextDecoding(**values["text_decoding"])
        return GenerationSettings(**values, seed=seed, num_samples=1)

    def runtime_options(self):
        """The `RuntimeOptions` of this system (CODI_* environment, then the overrides)."""
        from codi.engine.runtime import RuntimeOptions

        return RuntimeOptions.from_env(**self.runtime)

    def validate(self) -> None:
        """Raise CoDiUserError naming this system and the bad value."""
        from codi.engine.runtime import RuntimeOptions
        from codi.pipeline.request import ConditionInput, GenerationRequest, GenerationSettings

        _check(isinstance(self.name, str) and 0 < len(self.name.strip()) <= MAX_NAME,
               f"Each system needs a name of 1 to {MAX_NAME} characters.")
        _check(isinstance(self.model, str) and self.model.strip() != "",
               f"System {self.name!r}: give a model ('auto', 'embedded', 'nano', 'tiny' or a "
               "folder).")
        allowed = {f.name for f in fields(GenerationSettings)} - set(SESSION_OWNED_SETTINGS)
        unknown = sorted(set(self.settings) - allowed)
        _check(not unknown, f"System {self.name!r}: unknown setting(s) {', '.join(unknown)}; "
                            f"use {', '.join(sorted(allowed))} (seeds come from the session).")
        runtime_allowed = {f.name for f in fields(RuntimeOptions)}
        unknown = sorted(set(self.runtime) - runtime_allowed)
        _check(not unknown, f"System {self.name!r}: unknown runtime option(s) "
                            f"{', '.join(unknown)}; use {', '.join(sorted(runtime_allowed))}.")
        try:
            settings = self.generation_settings(0)
            GenerationRequest([ConditionInput("text", "x")], ["image"], settings).validate()
            RuntimeOptions(**self.runtime)
        except CoDiUserError as error:
            raise CoDiUserError(f"System {self.name!r}: {error}") from None
        except (TypeError, ValueError) as error:
            raise CoDiUserError(f"System {self.name!r}: a setting has the wrong type ({error}).")


@dataclass
class SessionSpec:
    """A whole session: every prompt × system × seed is one cell to generate and judge."""

    name: str
    prompts: list[PromptItem]
    systems: list[SystemSpec]
    seeds: list[int]
    criteria: list[str] = field(default_factory=lambda: list(DEFAULT_CRITERIA))

    def validate(self) -> None:
        """Raise CoDiUserError with a message a person can act on."""
        _check(isinstance(self.name, str) and 0 < len(self.name.strip()) <= 200,
               "Give the session a name (at most 200 characters).")
        _check(len(self.systems) >= 2, "Compare at least two systems.")
        names = [s.name.strip() for s in self.systems]
        _check(len(set(names)) == len(names), "System names must be unique.")
        for system in self.systems:
            system.validate()
        _check(len(self.prompts) >= 1, "Give at least one prompt.")
        ids = [p.id for p in self.prompts]
        _check(len(set(ids)) == len(ids), "Prompt ids must be unique.")
        for prompt in self.prompts:
            _validate_prompt(prompt)
        _check(len(self.seeds) >= 1, "Give at least one seed.")
        _check(all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63
                   for s in self.seeds), "Seeds must be whole numbers ≥ 0.")
        _check(len(set(self.seeds)) == len(self.seeds), "Seeds must be unique.")
        _check(len(self.criteria) >= 1, "Give at least one rating criterion.")
        _check(all(isinstance(c, str) and 0 < len(c.strip()) <= MAX_NAME for c in self.criteria),
               f"Criteria are names of 1 to {MAX_NAME} characters.")
        _check(len(set(self.criteria)) == len(self.criteria), "Criteria must be unique.")

    def system(self, name: str) -> SystemSpec:
        for system in self.systems:
            if system.name == name:
                return system
        raise CoDiUserError(f"This session has no system {name!r}.")

    def prompt(self, prompt_id: str) -> PromptItem:
        for prompt in self.prompts:
            if prompt.id == prompt_id:
                return prompt
        raise CoDiUserError(f"This session has no prompt {prompt_id!r}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionSpec:
        """The spec written by `to_dict` (CoDiUserError if it is not one)."""
        try:
            return cls(
                name=data["name"],
                prompts=[PromptItem(p["id"], [InputSpec(**i) for i in p["inputs"]],
                                    list(p["outputs"])) for p in data["prompts"]],
                systems=[SystemSpec(**s) for s in data["systems"]],
                seeds=[int(s) for s in data["seeds"]],
                criteria=list(data.get("criteria", DEFAULT_CRITERIA)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CoDiUserError(f"Not a valid session description ({error}).") from None


def _validate_prompt(prompt: PromptItem) -> None:
    _check(isinstance(prompt.id, str) and PROMPT_ID.fullmatch(prompt.id) is not None,
           f"Prompt id {prompt.id!r}: use letters, digits, '.', '_' or '-' (at most 64).")
    _check(len(prompt.inputs) >= 1, f"Prompt {prompt.id}: give at least one input.")
    for item in prompt.inputs:
        _check(item.modality in MODALITIES, f"Prompt {prompt.id}: unknown input type "
                                            f"{item.modality!r}; use {', '.join(MODALITIES)}.")
        _check(isinstance(item.value, str) and item.value.strip() != "",
               f"Prompt {prompt.id}: a {item.modality} input is empty.")
        _check(isinstance(item.weight, (int, float)) and item.weight >= 0,
               f"Prompt {prompt.id}: input weights must be numbers ≥ 0.")
    _check(len(prompt.outputs) >= 1, f"Prompt {prompt.id}: choose at least one output.")
    for output in prompt.outputs:
        _check(output in MODALITIES, f"Prompt {prompt.id}: unknown output {output!r}; "
                                     f"choose from {', '.join(MODALITIES)}.")
    _check(len(set(prompt.outputs)) == len(prompt.outputs),
           f"Prompt {prompt.id}: each output can be chosen once.")


def parse_prompts(
    path_or_text: str | Path,
    kind: PromptKind,
    base_dir: Path | None = None,
    outputs: list[str] | None = None,
) -> list[PromptItem]:
    """Prompts from a file (a `Path`, or a string naming an existing file) or from text.

    jsonl: one object a line, {"id"?, "text"?, "image"?, "audio"?, "video"?, "weights"?,
    "outputs"?}; a media key holds a path or a list of paths, "weights" maps a modality to a weight,
    "outputs" is a list or a comma-separated string. csv: the same columns ("weights" as
    "image=0.5;text=1" or JSON). lines: one text prompt per line. Missing ids become p001, p002, ...
    and missing outputs `outputs` (default: image). Relative media paths are taken from `base_dir`
    (default: the file's folder).
    """
    text, base_dir = _read_source(path_or_text, base_dir)
    default_outputs = list(outputs or ["image"])
    if kind == "lines":
        records = [{"text": line.strip()} for line in text.splitlines() if line.strip()]
    elif kind == "jsonl":
        records = _jsonl_records(text)
    elif kind == "csv":
        records = list(csv.DictReader(io.StringIO(text)))
    else:
        raise CoDiUserError(f"Prompt file kind {kind!r}: use jsonl, csv or lines.")
    _check(bool(records), "The prompt list is empty.")
    return [_prompt_from_record(r, n, base_dir, default_outputs)
            for n, r in enumerate(records, start=1)]


def _read_source(path_or_text: str | Path, base_dir: Path | None) -> tuple[str, Path | None]:
    is_file = isinstance(path_or_text, Path) or (
        "\n" not in path_or_text and len(path_or_text) < 4096 and Path(path_or_text).is_file())
    if not is_file:
        return str(path_or_text), base_dir
    path = Path(path_or_text)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CoDiUserError(f"Cannot read the prompt file {path.name} ({error}).") from None
    return text, base_dir if base_dir is not None else path.parent


def _jsonl_records(text: str) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise CoDiUserError(f"Prompt file line {number} is not valid JSON.") from None
        _check(isinstance(record, dict), f"Prompt file line {number} is not a JSON object.")
        records.append(record)
    return records


def _values(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value if str(v).strip()]
    return [str(value)]


def _weights(value: Any, where: str) -> dict[str, float]:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            value = json.loads(text)
        else:
            pairs = [p.split("=", 1) for p in re.split(r"[;,]", text) if p.strip()]
            _check(all(len(p) == 2 for p in pairs), f"{where}: write weights as image=0.5;text=1.")
            value = {k.strip(): v for k, v in pairs}
    _check(isinstance(value, dict), f"{where}: weights map an input type to a number.")
    try:
        return {str(k): float(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise CoDiUserError(f"{where}: weights must be numbers.") from None


def _prompt_from_record(
    record: dict[str, Any], number: int, base_dir: Path | None, default_outputs: list[str]
) -> PromptItem:
    prompt_id = str(record.get("id") or "").strip() or f"p{number:03d}"
    where = f"Prompt {prompt_id}"
    weights = _weights(record.get("weights"), where)
    unknown = sorted(set(weights) - set(MODALITIES))
    _check(not unknown, f"{where}: weights for unknown input type(s) {', '.join(unknown)}.")
    inputs = []
    for modality in MODALITIES:
        for value in _values(record.get(modality)):
            if modality != "text":
                path = Path(value).expanduser()
                value = str(path if path.is_absolute() or base_dir is None else base_dir / path)
            inputs.append(InputSpec(modality, value, weights.get(modality, 1.0)))
    raw = record.get("outputs")
    if isinstance(raw, list):
        outputs = [str(o).strip() for o in raw if str(o).strip()]
    else:
        outputs = [o for o in re.split(r"[\s,;|]+", str(raw or "")) if o]
    return PromptItem(prompt_id, inputs, outputs or list(default_outputs))
