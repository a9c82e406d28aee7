"""The README's Python example runs as written (on the embedded model, in a temp folder)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_first_lines_are_the_two_commands():
    lines = README.read_text().splitlines()
    commands = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    assert commands[0].endswith("python app.py")
    ci = (README.parent / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == commands[1] and "pytest" in ci


def test_python_example_runs(tmp_path, monkeypatch, capsys):
    (example,) = python_blocks()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CODI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CODI_MODEL_DIR", raising=False)
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert "step 20/20" in printed
    files = sorted(p.suffix for p in (tmp_path / "outputs").iterdir() if p.suffix != ".json")
    assert files == [".mp4", ".png", ".wav"]
