"""What the studio says about its model: which one, precision, device, memory, how to upgrade."""

from __future__ import annotations

import json
import os
from pathlib import Path

from codi.store.full_fetch import FetchProgress
from codi.store.model_store import ResolvedModel
from codi.store.tiny_random import TINY_RANDOM_KIND
from codi.store.weights import available_components

HOW_TO_GET_CODI = (
    "For real results download the full CoDi once (≈10 GB, converted on the fly): "
    "`python -m codi download --variant fp16`, then restart `python app.py` — `--model auto` "
    "picks it up."
)


def folder_size_bytes(folder: Path) -> int:
    """Total size of the weight files of a model folder."""
    return sum(p.stat().st_size for p in Path(folder).glob("*/*.safetensors"))


def memory_line(device: str) -> str:
    """GPU memory in use on CUDA; the process's resident memory elsewhere (Linux)."""
    if device.startswith("cuda"):
        import torch

        free, total = torch.cuda.mem_get_info(torch.device(device))
        return f"GPU memory {(total - free) / 2**30:.1f} / {total / 2**30:.1f} GiB in use"
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return ""
    return f"RAM {pages * os.sysconf('SC_PAGE_SIZE') / 2**30:.1f} GiB in use by the studio"


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def status_markdown(model: ResolvedModel, device: str, dtype: str,
                    how_to_upgrade: bool = True) -> str:
    """The banner: model, precision, device, memory, and (unless `how_to_upgrade` is off,
    as while the full model is fetched) the way to the full model."""
    upgrade = "\n\n" + HOW_TO_GET_CODI if how_to_upgrade else ""
    facts = [f"precision **{dtype}**", f"device **{device}**",
             f"weights {_size(folder_size_bytes(model.folder))}"]
    memory = memory_line(device)
    if memory:
        facts.append(memory)
    if model.kind == TINY_RANDOM_KIND:
        return (
            "**Model: the tiny random-weight CoDi** — it runs the whole any-to-any "
            "path offline, but its outputs are noise. " + " · ".join(facts) + upgrade
        )
    if model.kind == "nano":
        return (
            "**Model: CoDi-Nano**, the embedded default — a tiny CoDi trained by this project on "
            "its shapes world: try prompts like *a red circle on the left bouncing* (colours red, "
            "green, blue, yellow; circle, square, triangle; moving left/right, bouncing). "
            + " · ".join(facts) + upgrade
        )
    return f"**Model: CoDi** (`{model.folder}`, {model.kind}) · " + " · ".join(facts)


def _serving_name(kind: str) -> str:
    return {"nano": "CoDi-Nano", TINY_RANDOM_KIND: "the tiny random model"}.get(kind, "CoDi")


def fetch_markdown(progress: FetchProgress, kind: str) -> str:
    """The banner's line about the full CoDi being fetched at this start (`kind`: the model
    serving now)."""
    if progress.phase == "ready":
        return "**Switched to the full CoDi**, fetched and converted at this start."
    serving = _serving_name(kind)
    if progress.phase == "failed":
        return (f"**The full CoDi could not be prepared:** {progress.error} {serving} keeps "
                "serving. Restart the studio to try again (downloads resume where they "
                "stopped), or run `python -m codi download --variant fp16`.")
    if progress.phase == "downloading" and progress.file:
        got = f"{progress.done / 1e9:.2f}"
        step = (f"downloading `{progress.file}`: {got} / {progress.total / 1e9:.2f} GB "
                f"({100 * progress.done / progress.total:.0f} %)" if progress.total
                else f"downloading `{progress.file}`: {got} GB")
    elif progress.phase == "loading":
        step = "loading it onto the device"
    else:
        step = progress.detail or "reading the file list from the Hugging Face Hub"
    return (f"**Preparing the full CoDi** (once, on first start): {step}… Meanwhile {serving} "
            "serves; the studio switches to the full CoDi by itself when it is ready.")


def model_details_markdown(model_dir: Path) -> str:
    """The components of a model folder and what its conversion report says is missing."""
    components = available_components(model_dir)
    lines = [f"Folder `{model_dir}` — {len(components)} components:", ""]
    lines += [f"- `{name}`" for name in components]
    report_path = Path(model_dir) / "conversion_report.json"
    if report_path.exists():
        report = json.loads(report_path.read_text())
        for name, reason in sorted(report.get("absent", {}).items()):
            lines.append(f"- `{name}` absent: {reason}")
        for name, keys in sorted(report.get("filled_with_official_init", {}).items()):
            lines.append(f"- `{name}`: {len(keys)} tensors set to their official initial value")
    return "\n".join(lines)
