"""The full CoDi fetched at first start (codi.store.full_fetch): when, in the foreground for the
CLI, in the background for the studio (banner progress, then the switch), and what a failed or
interrupted fetch leaves. The Hub is the fake of tests/fake_hub.py; the rest is the real code."""

from __future__ import annotations

import json
import shutil

import huggingface_hub
import pytest
from fake_hub import install_fake_hub

from codi import cli
from codi.convert.sources import OFFICIAL_FILES
from codi.errors import CoDiUserError
from codi.pipeline.request import ConditionInput, GenerationRequest, GenerationSettings
from codi.store import download
from codi.store.full_fetch import (
    FETCH_ENV,
    BackgroundFetch,
    fetch_wanted,
    resolve_or_fetch,
)
from codi.store.model_store import ResolvedModel, default_model_dir, describe, resolve_model
from codi.store.tiny_random import TINY_RANDOM_DIR, TINY_RANDOM_KIND

FP16 = [f"checkpoints_fp16/{name}" for name in OFFICIAL_FILES]


@pytest.fixture
def online(tmp_path, monkeypatch):
    """The Hub reachable (the suite runs with HF_HUB_OFFLINE=1), a fresh CODI_HOME, not on a
    Space, no configured model."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for name in ("SPACE_ID", "CODI_MODEL_DIR", FETCH_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CODI_HOME", str(tmp_path / "codi-home"))
    return monkeypatch


@pytest.fixture
def hub(online, tmp_path, monkeypatch):
    return install_fake_hub(tmp_path, monkeypatch)


@pytest.mark.parametrize("spec, device, env, wanted", [
    ("auto", "cuda", {}, True),
    (None, "cuda", {}, True),
    ("auto", "cpu", {}, False),
    ("auto", "mps", {}, False),
    ("auto", "cpu", {FETCH_ENV: "1"}, True),
    ("auto", "cuda", {FETCH_ENV: "0"}, False),
    ("auto", "cuda", {"HF_HUB_OFFLINE": "1"}, False),
    ("auto", "cuda", {"SPACE_ID": "someone/codi"}, False),
    ("auto", "cuda", {"CODI_MODEL_DIR": "/models/mine"}, False),
    ("full", "cpu", {}, True),
    ("full", "cuda", {FETCH_ENV: "never"}, False),
    ("full", "cuda", {"SPACE_ID": "someone/codi"}, False),
    ("embedded", "cuda", {}, False),
    ("nano", "cuda", {}, False),
    ("/models/mine", "cuda", {}, False),
])
def test_when_a_start_fetches_the_full_model(online, spec, device, env, wanted):
    for name, value in env.items():
        online.setenv(name, value)
    assert fetch_wanted(spec, device) is wanted


def test_nothing_is_fetched_once_the_full_model_is_there(online):
    (default_model_dir()).mkdir(parents=True)
    (default_model_dir() / "model_index.json").write_text("{}")
    assert not fetch_wanted("auto", "cuda") and not fetch_wanted("full", "cpu")


def test_the_cli_fetches_full_in_the_foreground_and_auto_uses_it_next(hub):
    model = resolve_or_fetch("full", "cpu")
    assert model.kind == "full" and model.folder == default_model_dir().resolve()
    assert [path for _, path in hub.downloads] == FP16
    assert json.loads((model.folder / "model_index.json").read_text())["variant"] == "fp16"
    assert resolve_or_fetch("auto", "cuda").folder == model.folder
    assert len(hub.downloads) == len(FP16)  # no second download


def test_auto_on_a_cpu_fetches_nothing(hub):
    assert resolve_or_fetch("auto", "cpu").kind != "full" and hub.downloads == []


def test_auto_on_cuda_with_the_hub_unreachable_serves_the_embedded_model_and_says_why(hub):
    hub.offline = True
    model = resolve_or_fetch("auto", "cuda")
    assert model.kind != "full"
    assert "could not be fetched" in model.note and "Could not read the file list" in model.note
    with pytest.raises(CoDiUserError, match="Could not read the file list"):
        resolve_or_fetch("full", "cuda")


def test_a_mistyped_argument_is_told_before_any_download(hub, capsys):
    code = cli.main(["generate", "--model", "full", "--device", "cpu", "--text", "a bell",
                     "--outputs", "image", "--steps", "0"])
    assert code == 2 and hub.downloads == []
    assert "error:" in capsys.readouterr().err


def test_too_little_disk_is_a_clear_error_before_any_download(hub, monkeypatch):
    usage = shutil.disk_usage("/")
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(CoDiUserError, match="needs about .* GB free.*CODI_HOME"):
        resolve_or_fetch("full", "cpu")
    assert hub.downloads == []


def test_a_dropped_download_fails_clearly_and_the_next_start_completes(hub):
    hub.fail_on = FP16[2]
    fetch = BackgroundFetch()
    fetch.start()
    progress = fetch.join(30)
    assert progress.phase == "failed" and "resumes where it stopped" in progress.error
    assert not default_model_dir().exists()
    assert resolve_model("auto").kind != "full"  # the embedded model goes on serving
    hub.fail_on = None
    ready: list[ResolvedModel] = []
    again = BackgroundFetch()
    again.start(on_ready=ready.append)
    assert again.join(30).phase == "ready"
    assert [m.folder for m in ready] == [default_model_dir().resolve()]


def test_an_interrupted_conversion_leaves_nothing_auto_would_use(hub, monkeypatch):
    real_convert = download.convert

    def convert_then_die(sources, official, dst, **kwargs):
        next(iter(sources))
        (dst / "half-written.safetensors").write_bytes(b"x")
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "convert", convert_then_die)
    with pytest.raises(KeyboardInterrupt):
        resolve_or_fetch("full", "cpu")
    partial = default_model_dir().with_name(default_model_dir().name + ".partial")
    assert partial.exists() and not default_model_dir().exists()
    assert resolve_model("auto").kind != "full"
    monkeypatch.setattr(download, "convert", real_convert)
    assert resolve_or_fetch("full", "cpu").kind == "full" and not partial.exists()


def test_a_second_process_finds_the_first_ones_conversion(hub, monkeypatch, tmp_path):
    folder = resolve_or_fetch("full", "cpu").folder
    files = [hub.cache / path for path in FP16]
    sums = json.loads((folder / "model_index.json").read_text())["source_sha256"]
    monkeypatch.setattr(download, "convert", lambda *a, **k: pytest.fail("converted twice"))
    lines: list[str] = []
    assert download.convert_into(folder, files, "x/y", "fp16", sums, lines.append) == folder
    assert "converted from these files already" in lines[0]


def test_the_background_fetch_reports_bytes_then_phases(hub):
    hub.pause_in = FP16[1]
    fetch = BackgroundFetch()
    fetch.start()
    assert hub.paused.wait(30)
    progress = fetch.progress()
    size = (hub.root / FP16[1]).stat().st_size
    assert (progress.phase, progress.file, progress.done, progress.total) == (
        "downloading", FP16[1], hub.chunk, size)
    assert progress.busy
    hub.resume.set()
    done = fetch.join(30)
    assert done.phase == "ready" and not done.busy and done.error == ""


# --- the studio: it serves the embedded model meanwhile, then switches ---------------------


def a_full_model(tmp_path) -> ResolvedModel:
    """A converted folder that says it is the full model (the tiny random weights inside)."""
    folder = tmp_path / "fetched"
    shutil.copytree(TINY_RANDOM_DIR, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index.update(kind="full", note="")
    (folder / "model_index.json").write_text(json.dumps(index))
    return describe(folder)


class GatedWork:
    """A fetch that reports one file's progress and then waits to be released."""

    def __init__(self, model: ResolvedModel | None, error: Exception | None = None) -> None:
        import threading

        self.model, self.error = model, error
        self.reported, self.release = threading.Event(), threading.Event()

    def __call__(self, log, on_bytes):
        log("downloading ZinengTang/CoDi/checkpoints_fp16/CoDi_encoders.pth (file 1 of 4)")
        on_bytes("checkpoints_fp16/CoDi_encoders.pth", 3 * 10**9, 4 * 10**9)
        self.reported.set()
        assert self.release.wait(30)
        if self.error is not None:
            raise self.error
        return self.model


def text_to_image() -> GenerationRequest:
    return GenerationRequest(inputs=[ConditionInput("text", "a bell")], outputs=["image"],
                             settings=GenerationSettings(steps=2, seed=3))


def test_the_studio_shows_progress_then_switches_to_the_fetched_model(tmp_path):
    from ui.form import MODEL_SETTING_FIELDS
    from ui.handlers import StudioHandlers
    from ui.studio import Studio

    studio = Studio("tiny", output_dir=tmp_path / "results")
    handlers = StudioHandlers(studio, [])
    work = GatedWork(a_full_model(tmp_path))
    studio.start_fetch(BackgroundFetch(work))
    assert work.reported.wait(30)
    banner = studio.status()
    assert studio.preparing and "Preparing the full CoDi" in banner
    assert "`checkpoints_fp16/CoDi_encoders.pth`: 3.00 / 4.00 GB (75 %)" in banner
    assert "the tiny random model serves" in banner and "python -m codi download" not in banner
    before = handlers.refresh_model(0)
    assert before[2:] == [before[2]] * (2 + len(MODEL_SETTING_FIELDS))  # all skipped
    assert studio.generate(text_to_image(), "s1").images  # the embedded model serves meanwhile

    work.release.set()
    assert studio.fetch.join(60).phase == "ready"
    assert studio.model.kind == "full" and studio.model_version == 1 and not studio.preparing
    assert "Switched to the full CoDi" in studio.status()
    after = handlers.refresh_model(0)
    assert after[2] == 1 and len(after[3].samples) == len(handlers.examples)
    steps = MODEL_SETTING_FIELDS.index("steps")
    assert after[4 + steps] == studio.pipeline.defaults.get("steps", 50)
    result = studio.generate(text_to_image(), "s1")
    assert result.images and result.metadata["model"]["kind"] == "full"
    assert result.metadata["model"]["folder"] == str(work.model.folder)


def test_a_failed_background_fetch_keeps_the_embedded_model_and_says_what_to_do(tmp_path):
    from ui.studio import Studio

    studio = Studio("tiny", output_dir=tmp_path / "results")
    work = GatedWork(None, CoDiUserError("Downloading x failed (connection reset)."))
    studio.start_fetch(BackgroundFetch(work))
    work.release.set()
    assert studio.fetch.join(30).phase == "failed"
    banner = studio.status()
    assert studio.model.kind == TINY_RANDOM_KIND and studio.model_version == 0
    assert "could not be prepared:** Downloading x failed" in banner
    assert "Restart the studio to try again" in banner and not studio.preparing


def test_browser_banner_follows_the_fetch_and_the_page_takes_the_new_defaults(tmp_path,
                                                                              browser):
    from ui.app import build_app, launch_options
    from ui.form import TINY_RANDOM_STEPS
    from ui.studio import Studio

    studio = Studio("tiny", output_dir=tmp_path / "results")
    work = GatedWork(a_full_model(tmp_path))
    studio.start_fetch(BackgroundFetch(work))
    assert work.reported.wait(30)
    app = build_app(studio)
    app.queue(default_concurrency_limit=1, max_size=4)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True,
               quiet=True, **launch_options())
    try:
        page, expect = browser
        page.goto(app.local_url)
        banner = page.locator("#model-status")
        expect(banner).to_contain_text("Preparing the full CoDi", timeout=60_000)
        expect(banner).to_contain_text("(75 %)")
        page.locator("#settings").get_by_text("Settings").first.click()
        steps = page.get_by_label("number input for Steps")
        expect(steps).to_have_value(str(TINY_RANDOM_STEPS))
        work.release.set()
        expect(banner).to_contain_text("Switched to the full CoDi", timeout=30_000)
        expect(banner).to_contain_text("Model: CoDi")
        expect(steps).to_have_value("50", timeout=10_000)  # the switched model's default
        page.reload()
        expect(banner).to_contain_text("Switched to the full CoDi", timeout=60_000)
        page.locator("#settings").get_by_text("Settings").first.click()
        expect(steps).to_have_value("50", timeout=10_000)  # a page built for tiny, reloaded
    finally:
        app.close()


@pytest.mark.parametrize("fetch_env, opened, fetching", [("1", "embedded", True),
                                                        ("0", "auto", False)])
def test_app_serves_the_embedded_model_while_it_fetches(online, monkeypatch, tmp_path,
                                                        fetch_env, opened, fetching):
    import app as app_module
    import ui.app
    import ui.studio
    import ui.temp_files

    started: list[tuple[str, object]] = []

    class RecordingStudio:
        def __init__(self, model, runtime):
            started.append(("open", model))

        def start_fetch(self, fetch):
            started.append(("fetch", type(fetch).__name__))

    class Page:
        def queue(self, **kwargs):
            return self

        def launch(self, **kwargs):
            started.append(("launch", kwargs["server_port"]))

    monkeypatch.setattr(ui.temp_files, "serve_from_process_dir", lambda: tmp_path)  # no globals
    monkeypatch.setattr(ui.studio, "Studio", RecordingStudio)
    monkeypatch.setattr(ui.app, "build_app", lambda studio, data_dir=None: Page())
    monkeypatch.setenv(FETCH_ENV, fetch_env)
    app_module.main(["--device", "cpu", "--port", "7999"])
    expected = [("open", opened), *([("fetch", "BackgroundFetch")] if fetching else []),
                ("launch", 7999)]
    assert started == expected
