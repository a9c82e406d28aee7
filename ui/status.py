"""What the studio says about the model it found (folder, components, conversion report)."""

from __future__ import annotations

import json
from pathlib import Path

from codi.weights import available_components

HOW_TO_GET_CODI = (
    "Convert the official CoDi weights (≈20 GB download) with\n\n"
    "```\npython -m codi.convert ZinengTang/CoDi models/codi --dtype fp16\n```\n\n"
    "then start the studio with `python app.py --model models/codi`."
)


def model_status_markdown(model_dir: Path | None) -> str:
    """A short Markdown report on the model folder the studio was started with."""
    if model_dir is None or not Path(model_dir).is_dir():
        where = f"`{model_dir}` does not exist. " if model_dir else ""
        return f"**No converted CoDi model loaded.** {where}\n\n{HOW_TO_GET_CODI}"
    components = available_components(model_dir)
    if not components:
        return f"**`{model_dir}` holds no converted components.**\n\n{HOW_TO_GET_CODI}"
    lines = [f"**Model folder** `{model_dir}` — {len(components)} components:", ""]
    lines += [f"- `{name}`" for name in components]
    report_path = Path(model_dir) / "conversion_report.json"
    if report_path.exists():
        report = json.loads(report_path.read_text())
        for name, reason in sorted(report.get("absent", {}).items()):
            lines.append(f"- `{name}` absent: {reason}")
        for name, keys in sorted(report.get("filled_with_official_init", {}).items()):
            lines.append(f"- `{name}`: {len(keys)} tensors set to their official initial value")
    return "\n".join(lines)
