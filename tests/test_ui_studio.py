"""The studio served in-process on the embedded model, driven by gradio_client and by a browser.

Fast settings throughout: 2 steps, 64 px, 3 frames. The browser test uses Playwright with the
system's Chromium (never a downloaded one) and skips, saying why, when either is missing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from codi.store.assets import EXAMPLES_DIR
from ui.form import FIELDS

FAST = {"steps": 2, "image_size": 64, "num_frames": 3, "randomize_seed": False, "seed": 5}
RESULTS = ("text", "images", "audio", "video", "files", "params", "seed", "status")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from ui.app import build_app, launch_options
    from ui.studio import Studio

    studio = Studio("tiny", output_dir=tmp_path_factory.mktemp("studio-out"))
    app = build_app(studio)
    app.queue(default_concurrency_limit=1, max_size=8)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True,
               quiet=True, **launch_options())
    yield app
    app.close()


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served.local_url, verbose=False)


def generate(client, **values) -> dict:
    out = client.predict(**(FAST | values), api_name="/generate")
    return dict(zip(RESULTS, out, strict=True))


def file(name: str):
    from gradio_client import handle_file

    return handle_file(str(EXAMPLES_DIR / name))


def test_api_names_every_form_field(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/generate", "/cancel"} <= set(api)
    assert [p["parameter_name"] for p in api["/generate"]["parameters"]] == list(FIELDS) or (
        sorted(p["parameter_name"] for p in api["/generate"]["parameters"]) == sorted(FIELDS))
    assert all(p["parameter_has_default"] for p in api["/generate"]["parameters"])


def test_text_and_image_to_image_and_text(client):
    out = generate(client, text="a lighthouse", image=file("sunset.png"), image_weight=0.5,
                   outputs=["image", "text"])
    assert len(out["images"]) == 1 and out["images"][0]["image"].endswith(".png")
    assert isinstance(out["text"], str) and out["text"]
    assert out["audio"] is None and out["video"] is None
    params = json.loads(out["params"])
    assert params["settings"]["seed"] == out["seed"] == 5
    assert [(i["modality"], i["weight"]) for i in params["inputs"]] == [("text", 1.0),
                                                                         ("image", 0.5)]
    assert "Done" in out["status"]


def test_all_four_outputs_video_plays_the_generated_sound(client):
    from codi.media.video import load_video

    out = generate(client, text="rain on a roof",
                   outputs=["text", "image", "audio", "video"])
    assert out["text"] and len(out["images"]) == 1
    assert out["audio"].endswith(".wav") and out["video"].endswith(".mp4")
    assert sorted(Path(f).suffix for f in out["files"]) == [".mp4", ".png", ".txt", ".wav"]
    assert json.loads(out["params"])["video_audio"]["reconcile"] == "trim_audio"
    clip = load_video(out["video"], num_frames=3)
    assert clip.audio is not None and clip.frames.shape[0] == 3
    assert "the WAV has all of it" in out["status"]


def test_a_result_as_the_start_of_a_variation(client):
    from gradio_client import handle_file

    def pixels(out):
        return np.asarray(Image.open(out["images"][0]["image"]), dtype=float)

    first = generate(client, text="a red kite", outputs=["image", "audio"])
    start = {"start_image": handle_file(first["images"][0]["image"]),
             "start_audio": handle_file(first["audio"])}
    ignored = generate(client, text="a red kite", outputs=["image", "audio"], **start,
                       start_image_strength=1.0, start_audio_strength=1.0)
    assert np.array_equal(pixels(ignored), pixels(first))  # strength 1: ordinary generation
    kept = generate(client, text="a red kite", outputs=["image", "audio"], **start,
                    start_image_strength=0.0, start_audio_strength=0.5)
    starts = json.loads(kept["params"])["starts"]
    assert [(s["modality"], s["strength"], s["joins_at_step"]) for s in starts] == [
        ("image", 0.0, 2), ("audio", 0.5, 1)]
    assert not np.array_equal(pixels(kept), pixels(first))
    text_only = generate(client, text="a red kite", outputs=["text"], **start)
    assert "starts" not in json.loads(text_only["params"]) and text_only["text"]


def test_second_slots_and_media_inputs(client):
    out = generate(client, audio=file("bell.wav"), audio_weight=0.7,
                   image2=file("city.png"), image2_on=True, image2_weight=0.2,
                   video=file("bouncing_ball.mp4"), video_soundtrack=True, outputs=["image"])
    inputs = [(i["modality"], i["weight"]) for i in json.loads(out["params"])["inputs"]]
    assert inputs == [("image", 0.2), ("audio", 0.7), ("video", 1.0), ("audio", 1.0)]


def test_bad_file_gives_a_readable_error_and_the_server_keeps_serving(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "holiday.png"
    bad.write_bytes(b"this is not a picture at all")
    with pytest.raises(AppError) as error:
        generate(client, image=handle_file(str(bad)), outputs=["image"])
    message = str(error.value)
    assert "holiday.png" in message and "Traceback" not in message
    with pytest.raises(AppError, match="at least one input"):
        generate(client, outputs=["image"])
    assert generate(client, text="still here", outputs=["image"])["images"]


def test_cancel_stops_a_running_generation(client):
    from gradio_client.exceptions import AppError

    job = client.submit(**(FAST | {"text": "a long one", "steps": 200, "outputs": ["image"]}),
                        api_name="/generate")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        update = job.status()
        assert not job.done(), job.exception() or "finished before it could be cancelled"
        if update.progress_data and (update.progress_data[0].index or 0) >= 1:
            assert update.progress_data[0].length == 200
            assert "s left" in update.progress_data[0].desc  # the ETA
            break
        time.sleep(0.1)
    else:
        pytest.fail("the generation never reported a step")
    assert client.predict(api_name="/cancel").startswith("Cancelling")
    cancelled_at = time.monotonic()
    with pytest.raises(AppError, match="cancelled"):
        job.result(timeout=60)
    assert time.monotonic() - cancelled_at < 15
    assert client.predict(api_name="/cancel") == "Nothing is running."
    assert generate(client, text="after cancel", outputs=["image"])["images"]


def test_browser_generates_from_an_uploaded_image(served, tmp_path, browser):
    page, expect = browser
    page.goto(served.local_url)
    expect(page.locator("#model-status")).to_contain_text("tiny random", timeout=60_000)
    page.get_by_role("tab", name="Image").click()
    page.locator("#input-image input[type=file]").set_input_files(
        str(EXAMPLES_DIR / "sunset.png"))
    expect(page.locator("#input-image img")).to_be_visible(timeout=30_000)
    page.locator("#outputs-choice").get_by_label("text").check()
    expect(page.locator("#out-text")).to_be_visible()
    expect(page.locator("#out-audio")).to_be_hidden()
    expect(page.locator("#inputs-summary")).to_contain_text("image ×1")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#out-image img").first).to_be_visible(timeout=120_000)
    expect(page.locator("#out-text textarea")).not_to_have_value("", timeout=120_000)
    expect(page.locator("#run-status")).to_contain_text("Done", timeout=30_000)
    expect(page.locator("#history-gallery img").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(tmp_path / "studio.png"), full_page=True)

    outputs = page.locator("#outputs-choice")
    outputs.get_by_label("text").uncheck()
    expect(page.locator("#out-text")).to_be_hidden()
    page.locator("#history-gallery img").first.click()
    expect(page.locator("#run-status")).to_contain_text("Restored #1")
    expect(outputs.get_by_label("text")).to_be_checked()
    expect(page.locator("#out-text")).to_be_visible()

    page.locator("#examples").get_by_text("Two prompts, two pictures").click()
    page.get_by_role("tab", name="Text").click()
    expect(page.locator("#input-text textarea")).to_have_value(
        "a rainy city street at night")
    expect(page.locator("#input-text2 textarea")).to_have_value("a jazz saxophone solo")
    expect(page.locator("#inputs-summary")).to_contain_text(
        "text ×1, text ×0.5, image ×1, image ×0.3")
    expect(outputs.get_by_label("video")).to_be_checked()
    assert (tmp_path / "studio.png").stat().st_size > 10_000


def test_browser_uses_a_result_as_start_and_recalls_it(served, browser):
    page, expect = browser
    page.goto(served.local_url)
    expect(page.locator("#model-status")).to_contain_text("tiny random", timeout=60_000)
    page.locator("#input-text textarea").fill("a paper boat")
    summary = page.locator("#inputs-summary")
    expect(summary).to_contain_text("text ×1")
    page.get_by_role("button", name="+ Add a second prompt").click()
    page.locator("#input-text2 textarea").fill("a lighthouse")
    expect(summary).to_contain_text("text ×1, text ×")
    page.get_by_role("button", name="Remove the second prompt").click()
    expect(summary).not_to_contain_text("text ×1, text")
    expect(summary).to_contain_text("text ×1")
    use = page.locator("#use-start-image")
    expect(use).to_be_visible()
    expect(page.locator("#use-start-audio")).to_be_hidden()
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#run-status")).to_contain_text("Done", timeout=120_000)
    use.click()
    start = page.locator("#input-start_image img")
    expect(start).to_be_visible(timeout=30_000)
    expect(page.locator("#inputs-summary")).to_contain_text(
        "starting image from a file at strength 0.6", timeout=30_000)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#history-gallery img")).to_have_count(2, timeout=120_000)
    expect(page.locator("#run-status")).to_contain_text("Done", timeout=30_000)

    page.locator("#history-gallery img").last.click()  # newest first: #1, the plain one
    expect(page.locator("#run-status")).to_contain_text("Restored #1")
    expect(start).to_be_hidden(timeout=30_000)
    expect(page.locator("#inputs-summary")).not_to_contain_text("starting", timeout=30_000)
    page.locator("#history-gallery img").first.click()
    expect(page.locator("#run-status")).to_contain_text("Restored #2")
    expect(start).to_be_visible(timeout=30_000)
    expect(page.locator("#inputs-summary")).to_contain_text(
        "starting image from a file at strength 0.6", timeout=30_000)


def test_the_documented_client_snippet_runs(served, capsys):
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "studio.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL)
    code = compile(snippet.replace("http://127.0.0.1:7860/", served.local_url), "studio.md",
                   "exec")
    exec(code, {})  # noqa: S102 - the documented snippet, as written
    printed = capsys.readouterr().out.splitlines()[-1].split()
    assert printed[0].endswith(".png") and Path(printed[0]).is_file() and printed[-1] == "7"


def set_steps(page, expect, value: str) -> None:
    """Type the number of steps and wait until the slider shows it: the value a run sends is
    the slider's, which follows the box only once the box commits (Tab leaves it)."""
    box = page.get_by_label("number input for Steps")
    box.fill(value)
    box.press("Tab")
    expect(page.get_by_label("range slider for Steps")).to_have_value(value)


def test_browser_shows_live_previews_while_denoising(served, browser):
    page, expect = browser
    page.goto(served.local_url)
    expect(page.locator("#model-status")).to_contain_text("tiny random", timeout=60_000)
    page.locator("#input-text textarea").fill("a slow lantern")
    page.locator("#settings").get_by_text("Settings").first.click()
    set_steps(page, expect, "120")
    preview = page.locator("#live-preview")
    expect(preview).to_be_hidden()
    page.get_by_role("button", name="Generate").click()
    expect(preview.locator("img").first).to_be_visible(timeout=60_000)
    expect(preview).to_contain_text("Live preview · step")
    expect(page.locator("#run-status")).to_contain_text("Done", timeout=120_000)
    expect(preview).to_be_hidden()
    expect(page.locator("#out-image img").first).to_be_visible()

    page.locator("#live-previews-on").get_by_role("checkbox").uncheck()
    set_steps(page, expect, "20")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#history-gallery img")).to_have_count(2, timeout=120_000)
    expect(preview).to_be_hidden()
