"""Generating a session's grid: resumable, failures recorded, shards, and `python -m codi batch`."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from codi.cli import main
from codi.errors import CoDiUserError
from codi.evaluation import open_store
from codi.evaluation.batch import parse_shard
from codi.evaluation.grid import generate_session, shard_cells
from codi.evaluation.spec import InputSpec, PromptItem, SessionSpec, SystemSpec
from codi.pipeline.result import GenerationResult

REPO = Path(__file__).resolve().parents[1]


def tiny_spec(prompts: int, seeds: tuple[int, ...] = (1,)) -> SessionSpec:
    """Embedded model, 64 px, one or two steps: a real cell takes about a second."""
    return SessionSpec(
        name="grid",
        prompts=[PromptItem(f"p{i}", [InputSpec("text", f"a red square {i}")], ["image"])
                 for i in range(prompts)],
        systems=[SystemSpec("one-step", "tiny", {"steps": 1, "image_size": 64}),
                 SystemSpec("two-steps", "tiny", {"steps": 2, "image_size": 64})],
        seeds=list(seeds),
    )


class FakePipeline:
    """Stands in for CoDiPipeline: a flat image whose colour encodes the seed."""

    def __init__(self, fail_system_steps: int | None = None) -> None:
        self.calls = 0
        self.fail_steps = fail_system_steps

    def __call__(self, request, cancel=None) -> GenerationResult:
        self.calls += 1
        settings = request.settings
        if settings.steps == self.fail_steps:
            raise RuntimeError("boom")
        image = Image.new("RGB", (8, 8), (settings.seed % 256, settings.steps, 0))
        return GenerationResult(images=[image], metadata={"settings": settings.to_dict()})


def test_grid_resumes_after_cancel_and_records_failures(tmp_path):
    store = open_store(tmp_path)
    session_id = store.create_session(tiny_spec(prompts=3))
    fake, cancel, seen = FakePipeline(fail_system_steps=2), threading.Event(), []

    def stop_after_two(finished, total, cell):
        seen.append(cell.id)
        if finished == 2:
            cancel.set()

    summary = generate_session(store, session_id, tmp_path, pipeline_for=lambda s: fake,
                               on_progress=stop_after_two, cancel=cancel)
    assert summary.cancelled and fake.calls == 2
    assert (summary.generated, summary.failed) == (1, 1)
    counts = store.session(session_id)["counts"]
    assert counts == {"pending": 4, "done": 1, "failed": 1}
    failed = store.cells(session_id, "failed")[0]
    assert failed.system == "two-steps" and "boom" in failed.error

    fixed = FakePipeline()
    summary = generate_session(store, session_id, tmp_path, pipeline_for=lambda s: fixed)
    assert fixed.calls == 5 and summary.skipped == 1 and not summary.cancelled
    assert store.session(session_id)["counts"]["done"] == 6
    for cell in store.cells(session_id):
        path = tmp_path / cell.outputs["image"]
        assert not Path(cell.outputs["image"]).is_absolute()
        steps = 1 + (cell.system == "two-steps")
        assert Image.open(path).getpixel((0, 0))[:2] == (cell.seed, steps)


def test_two_shards_cover_every_cell_exactly_once(tmp_path):
    store = open_store(tmp_path)
    session_id = store.create_session(tiny_spec(prompts=3, seeds=(1, 2, 3)))
    done: list[list[int]] = [[], []]
    for index in (0, 1):
        systems = set()

        def record(finished, total, cell, i=index):
            done[i].append(cell.id)
            systems.add(cell.system)

        summary = generate_session(store, session_id, tmp_path, on_progress=record,
                                   pipeline_for=lambda s: FakePipeline(), shard=(index, 2))
        assert summary.total == len(done[index])
        assert systems == {"one-step", "two-steps"}  # each shard shares every system's cost
    all_ids = {cell.id for cell in store.cells(session_id)}
    assert set(done[0]).isdisjoint(done[1])
    assert sorted(done[0] + done[1]) == sorted(all_ids)
    assert abs(len(done[0]) - len(done[1])) <= 1
    assert store.session(session_id)["counts"]["done"] == len(all_ids)
    with pytest.raises(CoDiUserError):
        shard_cells(store.cells(session_id), (2, 2))


def test_parse_shard():
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/2/3", "-1/2"):
        with pytest.raises(CoDiUserError):
            parse_shard(bad)


def test_cli_batch_on_the_embedded_model_does_only_what_is_left(tmp_path):
    store = open_store(tmp_path)
    session_id = store.create_session(tiny_spec(prompts=1))
    cancel = threading.Event()
    summary = generate_session(store, session_id, tmp_path, pipeline_for=lambda s: FakePipeline(),
                               on_progress=lambda f, t, c: cancel.set(), cancel=cancel)
    assert summary.cancelled and summary.generated == 1
    (first,) = store.cells(session_id, "done")
    stamp = (tmp_path / first.outputs["image"]).stat().st_mtime_ns

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CODI_DATA_DIR": "/nonexistent"}
    run = subprocess.run(
        [sys.executable, "-m", "codi", "batch", session_id, "--data-dir", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("\n") == 1 and "two-steps" in run.stdout and "done" in run.stdout
    assert "generated 1, failed 0, already done 1" in run.stderr
    assert store.session(session_id)["counts"]["done"] == 2
    assert (tmp_path / first.outputs["image"]).stat().st_mtime_ns == stamp
    second = store.cells(session_id, "done")[1]
    assert second.system == "two-steps"
    assert Image.open(tmp_path / second.outputs["image"]).size == (64, 64)
    assert second.metadata["settings"]["seed"] == 1 and second.metadata["settings"]["steps"] == 2
    assert second.metadata["model"]



def test_cli_batch_user_errors_are_one_line(tmp_path, capsys):
    open_store(tmp_path)
    assert main(["batch", "nope", "--data-dir", str(tmp_path)]) == 2
    assert "no evaluation session 'nope'" in capsys.readouterr().err
    assert main(["batch", "nope", "--data-dir", str(tmp_path / "empty")]) == 2
    assert "holds no evaluation database" in capsys.readouterr().err
    assert main(["batch", "nope", "--data-dir", str(tmp_path), "--shard", "2/2"]) == 2


class SlowPipeline(FakePipeline):
    """A FakePipeline that takes a while, so two writers overlap; it records each seed it made."""

    def __init__(self, made: list[tuple[str, int]]) -> None:
        super().__init__()
        self.made = made

    def __call__(self, request, cancel=None) -> GenerationResult:
        import time

        time.sleep(0.05)
        self.made.append((request.inputs[0].value, request.settings.steps))
        return super().__call__(request, cancel)


def test_two_writers_on_one_session_never_generate_a_cell_twice(tmp_path):
    store = open_store(tmp_path)
    session_id = store.create_session(tiny_spec(prompts=4))
    made: list[tuple[str, int]] = []
    summaries = []

    def writer() -> None:  # each writer opens the database itself, as a second process would
        summaries.append(generate_session(open_store(tmp_path), session_id, tmp_path,
                                          pipeline_for=lambda s: SlowPipeline(made)))

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == len(set(made)) == 8  # every cell once, none twice
    assert sum(s.generated for s in summaries) == 8
    assert sum(s.claimed_elsewhere for s in summaries) >= 1  # they did meet
    assert store.session(session_id)["counts"] == {"pending": 0, "done": 8, "failed": 0}


def test_a_claim_of_a_live_writer_holds_and_a_dead_writers_claim_is_taken_over(tmp_path):
    store = open_store(tmp_path)
    session_id = store.create_session(tiny_spec(prompts=1))
    first, second = store.cells(session_id)
    import socket

    assert store.claim_cell(first.id, "someone-else-alive")  # another host, fresh: holds
    assert store.claim_cell(second.id, f"{socket.gethostname()}:999999999:dead")  # no such pid
    fake = FakePipeline()
    summary = generate_session(store, session_id, tmp_path, pipeline_for=lambda s: fake)
    assert (summary.generated, summary.claimed_elsewhere, fake.calls) == (1, 1, 1)
    assert store.cell(second.id).status == "done" and store.cell(first.id).status == "pending"
    store.release_cell(first.id, "someone-else-alive")
    assert generate_session(store, session_id, tmp_path, pipeline_for=lambda s: fake).generated == 1
    assert not store.claim_cell(first.id, "late")  # done cells are never claimed again
