"""benchmarks/load_test.py at a tiny size: `python app.py --model tiny` as a subprocess under
3 clients × 2 requests, one cancelling client and one sending a broken file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[int, dict, str]:
    out = tmp_path_factory.mktemp("load") / "report.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "load_test.py"), "--clients", "3",
         "--requests", "2", "--timeout-s", "120", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=400)
    assert out.exists(), proc.stderr[-2000:]
    return proc.returncode, json.loads(out.read_text()), proc.stdout


def test_every_request_is_accounted_for_and_the_run_passes(report):
    code, data, stdout = report
    assert code == 0, stdout
    counts = data["counts"]
    assert sum(counts.values()) == data["expected"] == 3 * 2 + 2
    assert counts["lost"] == 0 and counts["completed"] >= 3 * 2
    assert data["problems"] == [] and "verdict: ok" in stdout
    assert 0 < data["p50_s"] <= data["p95_s"]


def test_the_cancel_and_the_broken_file_get_readable_messages(report):
    _, data, _ = report
    by_client = {o["client"]: o for o in data["outcomes"]}
    assert by_client["broken-file"]["kind"] == "failed"
    assert "holiday.png" in by_client["broken-file"]["message"]
    assert "Traceback" not in by_client["broken-file"]["message"]
    assert by_client["canceller"]["kind"] == "cancelled"
    assert "cancelled" in by_client["canceller"]["message"].lower()


def test_memory_and_temporary_files_are_measured_and_nothing_is_left(report):
    _, data, _ = report
    assert data["rss_before_mb"] > 0 and data["rss_after_mb"] > 0
    assert data["temp_files_peak"] >= data["temp_files_before"] > 0
    assert 0 < data["result_folders_peak"] <= data["result_folder_bound"]
    assert data["temp_files_after_shutdown"] == 0 and data["left_behind"] == []
    assert data["server_exit"] == 0
    assert data["result_folders_after_leave"] == 0  # closed clients' sessions took theirs


def test_a_silently_lost_request_or_a_leftover_file_fails_the_run():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from load_test import Outcome, parse_args, summarize

    args = parse_args(["--clients", "1", "--requests", "1"])
    base = {"rss_before_mb": 500.0, "rss_after_mb": 520.0, "result_folders_peak": 1,
            "temp_files_after_shutdown": 0, "left_behind": [], "server_alive": True,
            "hung_threads": 0}
    done = [Outcome("c", "m", "completed", 1.0), Outcome("canceller", "cancel", "cancelled", 1.0, "x"),
            Outcome("broken-file", "bad", "failed", 0.1, "not an image")]
    assert summarize(dict(base), done, args)["problems"] == []
    lost = [*done[:2], Outcome("broken-file", "bad", "lost", 0.1, "no answer")]
    assert "1 lost" in summarize(dict(base), lost, args)["problems"][0]
    refused = [*done[:2], Outcome("broken-file", "bad", "refused", 0.1, "Queue is full!")]
    assert summarize(dict(base), refused, args)["problems"] == [
        "the broken file got no readable message (refused)"]
    late = [done[0], Outcome("canceller", "cancel", "completed", 9.0, "finished first"),
            done[2]]
    assert summarize(dict(base), late, args)["problems"] == [
        "the cancel did not stop its generation (finished first)"]
    assert summarize(dict(base), done[:2], args)["problems"]  # one outcome missing
    left = summarize(dict(base, left_behind=["codi-studio-x"]), done, args)["problems"]
    assert left == ["left after shutdown: codi-studio-x"]
    grown = summarize(dict(base, rss_after_mb=900.0), done, args)["problems"]
    assert grown and "RSS grew" in grown[0]
