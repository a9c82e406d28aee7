"""The README: Spaces front matter, the two commands right below it, and a Python example that
runs as written (on the embedded model, in a temp folder)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def front_matter_and_body() -> tuple[dict[str, str], list[str]]:
    """The YAML front matter (top-level `key: value` pairs, lists as their items) and the
    visible lines after it."""
    lines = README.read_text().splitlines()
    assert lines[0] == "---", "the README starts with Hugging Face Spaces front matter"
    end = lines.index("---", 1)
    meta: dict[str, str] = {}
    key = ""
    for line in lines[1:end]:
        if line.startswith("  - "):
            meta[key] += line[4:].strip() + "\n"
        else:
            key, _, value = line.partition(":")
            meta[key] = value.strip().strip('"')
    return meta, lines[end + 1 :]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_front_matter_describes_the_space():
    import gradio

    meta, _ = front_matter_and_body()
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio.__version__
    assert (README.parent / meta["app_file"]).is_file()
    assert meta["models"].split() == ["ZinengTang/CoDi"]
    assert meta["suggested_hardware"] and 0 < len(meta["short_description"]) <= 60


def test_first_visible_lines_are_the_two_commands():
    _, body = front_matter_and_body()
    visible = [line for line in body if line.strip()]
    assert visible[0] == "# CoDi Studio" and visible[1] == "```bash"
    commands = visible[2:4]
    assert commands[0].endswith("python app.py")
    ci = (README.parent / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == commands[1] and "pytest" in ci and "requirements-dev.txt" in ci


def test_client_snippet_is_the_one_the_studio_tests_run():
    studio_doc = (README.parent / "docs" / "studio.md").read_text()
    (snippet,) = [block for block in python_blocks() if "gradio_client" in block]
    assert f"```python\n{snippet}```" in studio_doc


def test_python_example_runs(tmp_path, monkeypatch, capsys):
    (example,) = [block for block in python_blocks() if "CoDiPipeline" in block]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CODI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CODI_MODEL_DIR", raising=False)
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert "step 20/20" in printed
    files = sorted(p.suffix for p in (tmp_path / "outputs").iterdir() if p.suffix != ".json")
    assert files == [".mp4", ".png", ".wav"]
