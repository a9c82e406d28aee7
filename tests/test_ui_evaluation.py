"""The Evaluate tab served in-process on the embedded model, driven with gradio_client: a whole
session (create, generate, resume, vote, rate, results, export, import), user errors as
messages, and many raters voting at once.

Fast settings: 2 steps, 64 px images, image outputs only.
"""

from __future__ import annotations

import json
import threading
import zipfile

import pytest
from eval_client import wait_for_generation

from codi.store.assets import EXAMPLES_DIR

FAST = {"steps": 2, "image_size": 64}
SYSTEMS = [{"name": "two steps", "model": "tiny", "settings": FAST},
           {"name": "two steps cfg 1", "model": "tiny", "settings": FAST | {
               "guidance_scale": 1.0}}]
ENDPOINTS = ("/eval_create", "/eval_generate", "/eval_progress", "/eval_cancel", "/eval_sessions",
             "/eval_next", "/eval_vote", "/eval_rate", "/eval_results", "/eval_export",
             "/eval_import")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from ui.app import build_app, launch_options
    from ui.studio import Studio

    data_dir = tmp_path_factory.mktemp("eval-data")
    studio = Studio("tiny", output_dir=tmp_path_factory.mktemp("studio-out"))
    app = build_app(studio, data_dir=data_dir)
    app.queue(default_concurrency_limit=1, max_size=64)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True,
               quiet=True, **launch_options(data_dir))
    yield app, data_dir
    app.close()


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served[0].local_url, verbose=False)


@pytest.fixture(scope="module")
def store(served):
    from codi.evaluation import open_store

    return open_store(served[1])


def create(client, typed: str = "", uploads=(), systems=SYSTEMS, seeds: str = "1", **extra):
    values = {"name": "test session", "typed": typed, "uploads": list(uploads),
              "outputs": ["image"], "seeds": seeds,
              "systems": systems if isinstance(systems, str) else json.dumps(systems),
              "criteria": ""} | extra
    message, session_id = client.predict(**values, api_name="/eval_create")
    return message, session_id


def generate_all(client, session_id: str) -> dict:
    client.predict(session_id, api_name="/eval_generate")
    return wait_for_generation(client, session_id)


@pytest.fixture(scope="module")
def session(client, tmp_path_factory):
    """Typed prompt + an uploaded JSONL naming an uploaded picture, 2 systems × 2 seeds."""
    from gradio_client import handle_file

    folder = tmp_path_factory.mktemp("upload")
    prompts = folder / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "sun", "text": "warm light", "image": "sunset.png",
                                   "weights": {"image": 0.5}}) + "\n")
    message, session_id = create(client, typed="a lighthouse", seeds="1, 2", uploads=[
        handle_file(str(prompts)), handle_file(str(EXAMPLES_DIR / "sunset.png"))])
    assert session_id and "2 prompts × 2 systems" in message and "8 outputs" in message
    state = generate_all(client, session_id)
    assert (state["done"], state["failed"], state["pending"]) == (8, 0, 0), state
    return session_id


def test_every_eval_endpoint_is_named(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(ENDPOINTS) <= set(api)
    assert {"/generate", "/cancel"} <= set(api)


def test_created_session_keeps_prompts_media_and_systems(client, session, served):
    listed = {s["id"]: s for s in client.predict(api_name="/eval_sessions")}
    spec = listed[session]["spec"]
    assert [p["id"] for p in spec["prompts"]] == ["t001", "sun"]
    image = spec["prompts"][1]["inputs"][1]
    assert image["modality"] == "image" and image["weight"] == 0.5
    assert (served[1] / image["value"]).is_file()  # copied into the data folder
    assert [s["name"] for s in spec["systems"]] == [s["name"] for s in SYSTEMS]
    assert spec["seeds"] == [1, 2] and spec["criteria"][0] == "quality"


def test_generation_resumes_with_the_cells_left(client, session, store):
    cells = store.cells(session)
    store.mark_cell(cells[3].id, "pending")
    before = {c.id: c.updated_at for c in cells}
    state = generate_all(client, session)
    assert (state["done"], state["pending"]) == (8, 0)
    after = {c.id: c.updated_at for c in store.cells(session)}
    assert [i for i in after if after[i] != before[i]] == [cells[3].id]


def test_blind_votes_map_back_to_the_systems(client, session, store):
    seen_sides = set()
    for _ in range(4):
        pair = client.predict(session, "ann", api_name="/eval_next")
        assert pair["token"] and set(pair["A"]) == {"image", "audio", "video", "text"}
        assert not any(s["name"] in json.dumps(pair) for s in SYSTEMS)
        recorded = client.predict(pair["token"], "ann", "A", api_name="/eval_vote")
        vote = next(v for v in store.votes(session) if v["id"] == recorded["vote_id"])
        assert vote["rater"] == "ann" and {recorded["A"], recorded["B"]} == {
            vote["system_a"], vote["system_b"]}
        assert vote["choice"] == ("a" if recorded["A"] == vote["system_a"] else "b")
        seen_sides.add(recorded["A"])
        rated = client.predict(pair["token"], "ann", "B", {"quality": 4, "faithfulness": 2},
                               "grainy", api_name="/eval_rate")
        assert len(rated["ratings"]) == 2
    assert recorded["progress"] == [4, 4]
    done = client.predict(session, "ann", api_name="/eval_next")
    assert done == {"token": None, "progress": [4, 4]}
    ratings = [r for r in store.ratings(session) if r["rater"] == "ann"]
    assert len(ratings) == 8 and {r["comment"] for r in ratings} == {"grainy"}
    assert {r["criterion"]: r["score"] for r in ratings} == {"quality": 4, "faithfulness": 2}


def test_results_export_and_import(client, session, store, served):
    pair = client.predict(session, "bob", api_name="/eval_next")
    client.predict(pair["token"], "bob", "tie", api_name="/eval_vote")
    report, wins, ranking, means, summary = client.predict(session, api_name="/eval_results")
    assert summary["votes"] == len(store.votes(session)) >= 5
    assert summary["raters"] == ["ann", "bob"]
    systems = summary["win_rates"]["systems"]
    assert sum(s["wins"] for s in systems.values()) == sum(
        v["choice"] in ("a", "b") for v in store.votes(session))
    assert "Win rates" in report and "Ranking" in report and "Mean ratings" in report
    assert [row[0] for row in wins["data"]] == sorted(systems)
    assert {row[1] for row in means["data"]} <= {s["name"] for s in SYSTEMS}
    assert len(ranking["data"]) == 2

    exported = client.predict(session, api_name="/eval_export")
    with zipfile.ZipFile(exported) as archive:
        names = set(archive.namelist())
        assert {"session.json", "votes.jsonl", "votes.csv", "ratings.jsonl"} <= names
        assert sum(n.endswith(".png") for n in names) >= 8
    from gradio_client import handle_file

    message, imported = client.predict(handle_file(exported), api_name="/eval_import")
    assert imported != session and "Imported" in message
    assert len(store.votes(imported)) == len(store.votes(session))
    assert len(store.ratings(imported)) == len(store.ratings(session))
    assert store.session(imported)["counts"]["done"] == 8


@pytest.mark.parametrize("call, message", [
    (lambda c, s: c.predict(s, "  ", api_name="/eval_next"), "rater name"),
    (lambda c, s: c.predict("", "ann", api_name="/eval_next"), "Choose a session"),
    (lambda c, s: c.predict("", api_name="/eval_generate"), "Choose a session"),
    (lambda c, s: c.predict("", api_name="/eval_results"), "Choose a session"),
    (lambda c, s: c.predict("stale-token", "ann", "A", api_name="/eval_vote"), "no longer open"),
    (lambda c, s: create(c, typed="x", systems=SYSTEMS[:1]), "at least two systems"),
    (lambda c, s: create(c, typed="x", seeds="one"), "Seeds are whole numbers"),
    (lambda c, s: create(c, typed="", systems=SYSTEMS), "at least one prompt"),
    (lambda c, s: create(c, typed="x", systems="[{"), "not valid JSON"),
    (lambda c, s: c.predict(None, api_name="/eval_import"), "zip"),
])
def test_mistakes_are_messages_not_tracebacks(client, session, call, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as error:
        call(client, session)
    assert message in str(error.value) and "Traceback" not in str(error.value)


def test_bad_uploads_are_messages(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    broken = tmp_path / "prompts.jsonl"
    broken.write_text('{"text": "fine"}\n{"text": oops}\n')
    with pytest.raises(AppError, match="line 2 is not valid JSON"):
        create(client, uploads=[handle_file(str(broken))])
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"text": "x", "image": "nowhere.png"}\n')
    with pytest.raises(AppError, match="nowhere.png"):
        create(client, uploads=[handle_file(str(missing))])
    junk = tmp_path / "session.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(AppError) as error:
        client.predict(handle_file(str(junk)), api_name="/eval_import")
    assert "Traceback" not in str(error.value)


def test_parallel_raters_lose_no_vote(client, served, store):
    from gradio_client import Client

    three = [*SYSTEMS, {"name": "three steps", "model": "tiny", "settings": FAST | {
        "steps": 3}}]
    _, session_id = create(client, typed="a bell", systems=three, seeds="7, 8")
    assert generate_all(client, session_id)["done"] == 6
    raters = [f"rater{n}" for n in range(6)]
    returned: dict[str, list[int]] = {r: [] for r in raters}
    failures: list[BaseException] = []

    def rate_everything(rater: str) -> None:
        try:
            mine = Client(served[0].local_url, verbose=False)
            while (pair := mine.predict(session_id, rater, api_name="/eval_next"))["token"]:
                answer = ("A", "B", "tie", "both_bad")[len(returned[rater]) % 4]
                returned[rater].append(mine.predict(pair["token"], rater, answer,
                                                    api_name="/eval_vote")["vote_id"])
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=rate_everything, args=(r,)) for r in raters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not failures, failures
    votes = store.votes(session_id)
    assert sorted(v["id"] for v in votes) == sorted(i for ids in returned.values() for i in ids)
    for rater in raters:
        mine = [v for v in votes if v["rater"] == rater]
        assert len(mine) == len(returned[rater]) == 6  # 2 seeds × 3 system pairs
        assert len({(v["seed"], frozenset((v["system_a"], v["system_b"]))) for v in mine}) == 6


def test_the_documented_client_snippet_runs(served, capsys):
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "evaluation.md").read_text()
    (snippet,) = [s for s in re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL)
                  if "/eval_create" in s]
    code = compile(snippet.replace("http://127.0.0.1:7860/", served[0].local_url),
                   "evaluation.md", "exec")
    exec(code, {})  # noqa: S102 - the documented snippet, as written
    printed = capsys.readouterr().out.splitlines()
    assert all(Path(p).is_file() for p in printed[-2].split())
    assert printed[-1].endswith("won; 1 vote(s)") and printed[-1].split()[0] in ("2", "3")


def test_data_dir_flag_and_environment(monkeypatch, tmp_path):
    import app

    monkeypatch.setenv("CODI_DATA_DIR", str(tmp_path / "from-env"))
    assert app.parse_args([]).data_dir == str(tmp_path / "from-env")
    assert app.parse_args(["--data-dir", str(tmp_path / "flag")]).data_dir == str(
        tmp_path / "flag")
    monkeypatch.delenv("CODI_DATA_DIR")
    assert app.parse_args([]).data_dir is None


def test_history_entries_become_prompts_with_their_weights_and_outputs():
    from ui.evaluation.forms import collect_prompts, parse_criteria, parse_seeds
    from ui.form import default_form

    form = default_form() | {"text": "a bell", "text_weight": 0.5, "image": str(
        EXAMPLES_DIR / "city.png"), "outputs": ["audio", "image"]}
    typed, picked = collect_prompts("rain\n\nsnow", None, ["video"], [form])[1:]
    assert (typed.id, typed.outputs) == ("t002", ["video"])
    assert picked.id == "h001" and picked.outputs == ["audio", "image"]
    assert [(i.modality, i.value, i.weight) for i in picked.inputs] == [
        ("text", "a bell", 0.5), ("image", str(EXAMPLES_DIR / "city.png"), 1.0)]
    assert parse_seeds("3, 5 8") == [3, 5, 8]
    assert parse_criteria(" sharpness , realism ") == ["sharpness", "realism"]
