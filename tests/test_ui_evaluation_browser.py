"""The Evaluate tab in a browser: generate with live progress, then vote blind with the keyboard
(sides are random, so the recorded vote is checked against the names revealed after it).

Playwright with the system's Chromium (never a downloaded one); skips, saying why, when either
is missing. Fast settings: 2 steps, 64 px images.
"""

from __future__ import annotations

import pytest

FAST = {"steps": 2, "image_size": 64}
SYSTEMS = ("left-handed system", "right-handed system")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from codi.evaluation import open_store
    from codi.evaluation.spec import InputSpec, PromptItem, SessionSpec, SystemSpec
    from ui.app import build_app, launch_options
    from ui.studio import Studio

    data_dir = tmp_path_factory.mktemp("eval-data")
    store = open_store(data_dir)
    spec = SessionSpec("keyboard session",
                       [PromptItem("cat", [InputSpec("text", "a cat")], ["image"])],
                       [SystemSpec(name, "tiny", FAST) for name in SYSTEMS], [1, 2])
    session_id = store.create_session(spec)
    studio = Studio("tiny", output_dir=tmp_path_factory.mktemp("studio-out"))
    app = build_app(studio, data_dir=data_dir)
    app.queue(default_concurrency_limit=1, max_size=8)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True,
               quiet=True, **launch_options(data_dir))
    yield app, store, session_id
    app.close()


def _check_vote(store, session_id: str, revealed_a: str, count: int) -> dict:
    votes = store.votes(session_id)
    assert len(votes) == count
    vote = votes[-1]
    assert vote["rater"] == "kim" and {vote["system_a"], vote["system_b"]} == set(SYSTEMS)
    return vote | {"a_was_left": revealed_a == vote["system_a"]}


def test_generate_then_vote_with_the_keyboard(served, browser, tmp_path):
    app, store, session_id = served
    page, expect = browser
    page.goto(app.local_url)
    page.get_by_role("tab", name="Evaluate").click()
    expect(page.locator("#eval-session-info")).to_contain_text("keyboard session",
                                                               timeout=60_000)

    page.get_by_role("tab", name="Generate outputs").click()
    page.locator("#eval-start").click()
    expect(page.locator("#eval-generation")).to_contain_text("4 / 4 outputs generated",
                                                             timeout=120_000)
    expect(page.locator("#eval-generation")).not_to_contain_text("running", timeout=30_000)

    page.get_by_role("tab", name="Rate", exact=True).click()
    expect(page.locator("#eval-begin")).to_be_visible(timeout=30_000)
    name_box = page.locator("#eval-rater textarea, #eval-rater input").first
    name_box.fill("kim")
    page.wait_for_timeout(500)  # a tab shown for the first time can re-render once, emptying it
    if name_box.input_value() != "kim":
        name_box.fill("kim")
    expect(name_box).to_have_value("kim")
    page.locator("#eval-begin").click()
    rate = page.locator("#eval-rate")
    # The first pair opens both systems' media: slow on a loaded 2-core machine.
    expect(rate.locator("#eval-a-image img")).to_be_visible(timeout=90_000)
    expect(page.locator("#eval-progress")).to_contain_text("0 / 2")
    for name in SYSTEMS:  # blind before the vote
        expect(rate).not_to_contain_text(name)
    page.locator("#eval-a-score-0 label").filter(has_text="4").click()

    page.locator("#eval-prompt").click()
    page.keyboard.press("1")
    expect(page.locator("#eval-vote-status")).to_contain_text("Recorded: A is better",
                                                              timeout=30_000)
    revealed = page.locator("#eval-side-a").inner_text().split("·")[-1].strip()
    assert revealed in SYSTEMS
    expect(page.locator("#eval-side-b")).to_contain_text(
        next(s for s in SYSTEMS if s != revealed))
    expect(page.locator("#eval-progress")).to_contain_text("1 / 2")
    vote = _check_vote(store, session_id, revealed, 1)
    assert vote["choice"] == ("a" if vote["a_was_left"] else "b")
    (rating,) = store.ratings(session_id)
    assert (rating["system"], rating["criterion"], rating["score"]) == (revealed, "quality", 4)

    page.keyboard.press("n")
    expect(page.locator("#eval-vote-status")).to_have_text("", timeout=30_000)
    for name in SYSTEMS:
        expect(rate).not_to_contain_text(name)
    comment = page.locator("#eval-b-comment textarea, #eval-b-comment input").first
    comment.fill("")
    comment.press_sequentially("1 x 2")  # typing is not voting
    assert len(store.votes(session_id)) == 1
    page.locator("#eval-prompt").click()
    page.keyboard.press("x")  # a comment needs a score: a message, nothing recorded
    expect(page.get_by_text("at least one score to keep the comment")).to_be_visible(
        timeout=30_000)
    assert len(store.votes(session_id)) == 1
    page.locator("#eval-b-score-1 label").filter(has_text="2").click()
    page.locator("#eval-prompt").click()
    page.keyboard.press("x")
    expect(page.locator("#eval-vote-status")).to_contain_text("both bad", timeout=30_000)
    revealed = page.locator("#eval-side-a").inner_text().split("·")[-1].strip()
    assert _check_vote(store, session_id, revealed, 2)["choice"] == "both_bad"
    latest = store.ratings(session_id)[-1]
    assert (latest["criterion"], latest["score"], latest["comment"]) == ("faithfulness", 2,
                                                                         "1 x 2")
    assert latest["system"] != revealed  # side B
    page.screenshot(path=str(tmp_path / "evaluate.png"), full_page=True)

    page.reload()  # the rater and the session survive a refresh; every pair is judged
    page.get_by_role("tab", name="Evaluate").click()
    page.get_by_role("tab", name="Rate", exact=True).click()
    expect(page.locator("#eval-rater textarea, #eval-rater input").first).to_have_value(
        "kim", timeout=30_000)
    page.locator("#eval-begin").click()
    expect(page.locator("#eval-progress")).to_contain_text("judged: all done", timeout=30_000)
    expect(page.locator("#eval-progress")).to_contain_text("2 / 2")
    expect(rate).to_be_hidden()
