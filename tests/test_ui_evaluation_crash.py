"""`python app.py --data-dir D` killed with SIGKILL while raters are voting: after a restart
every vote whose call returned is in the database, and voting goes on.

Runs the real entry point as a subprocess on the embedded model (2 steps, 64 px images).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from eval_client import wait_for_generation

ROOT = Path(__file__).resolve().parents[1]
FAST = {"steps": 2, "image_size": 64}
SYSTEMS = [{"name": name, "model": "tiny", "settings": FAST | {"guidance_scale": scale}}
           for name, scale in (("cfg 1", 1.0), ("cfg 4", 4.0), ("cfg 8", 8.0))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(data_dir: Path, port: int, log: Path) -> tuple[subprocess.Popen, object]:
    from gradio_client import Client

    env = os.environ | {"HF_HUB_OFFLINE": "1", "CODI_DATA_DIR": "/nonexistent-flag-wins"}
    with log.open("ab") as out:
        server = subprocess.Popen(
            [sys.executable, "app.py", "--model", "tiny", "--data-dir", str(data_dir),
             "--port", str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"app.py exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return server, Client(f"http://127.0.0.1:{port}/", verbose=False)
        except Exception:  # noqa: BLE001 - not listening yet
            time.sleep(0.5)
    server.kill()
    pytest.fail(f"app.py did not start:\n{log.read_text()[-3000:]}")


def _kill(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)
    assert server.returncode == -signal.SIGKILL


def test_every_returned_vote_survives_kill_9(tmp_path):
    data_dir, port, log = tmp_path / "data", _free_port(), tmp_path / "server.log"
    server, client = _start(data_dir, port, log)
    try:
        _, session_id = client.predict(
            name="crash", typed="a bell\na boat", uploads=[], outputs=["image"],
            systems=json.dumps(SYSTEMS), seeds="3", criteria="", api_name="/eval_create")
        client.predict(session_id, api_name="/eval_generate")
        assert wait_for_generation(client, session_id)["done"] == 6

        returned: list[int] = []
        stop = threading.Event()

        def rate(rater: str) -> None:
            from gradio_client import Client

            mine = Client(f"http://127.0.0.1:{port}/", verbose=False)
            while not stop.is_set():
                try:
                    pair = mine.predict(session_id, rater, api_name="/eval_next")
                    if pair["token"] is None:
                        return
                    vote = mine.predict(pair["token"], rater, "A", api_name="/eval_vote")
                except Exception:  # noqa: BLE001 - the server was killed mid-call
                    return
                returned.append(vote["vote_id"])

        raters = [threading.Thread(target=rate, args=(f"r{n}",)) for n in range(4)]
        for thread in raters:
            thread.start()
        deadline = time.monotonic() + 60
        while len(returned) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        _kill(server)  # mid-session: raters are still voting
        stop.set()
        for thread in raters:
            thread.join(timeout=60)
        assert len(returned) >= 6
    finally:
        if server.poll() is None:
            server.kill()

    server, client = _start(data_dir, port, log)
    try:
        summary = client.predict(session_id, api_name="/eval_results")[-1]
        from codi.evaluation import open_store

        recorded = {v["id"] for v in open_store(data_dir).votes(session_id)}
        assert set(returned) <= recorded
        assert summary["vote_rows"] == len(recorded)
        pair = client.predict(session_id, "late rater", api_name="/eval_next")
        assert client.predict(pair["token"], "late rater", "tie",
                              api_name="/eval_vote")["vote_id"] > max(returned)
    finally:
        _kill(server)
