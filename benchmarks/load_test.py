"""Load test of the studio: `python app.py --model tiny` under many concurrent API clients.

    python benchmarks/load_test.py                                   # 20 clients × 10 requests
    python benchmarks/load_test.py --clients 3 --requests 2 --timeout-s 120 --json out.json

Starts the studio on the tiny random model (2 steps, 64 px, 3 frames) on a free loopback port as
a subprocess whose temporary directory (TMPDIR) is a fresh folder, then runs `--clients`
gradio_client clients at once, each sending `--requests` /generate requests in turn (the modes
cycle: text→image, text→audio, text→text, text→image+audio, image→text, audio→image,
text→video, text→all four), plus one client that cancels its generation midway and one that
sends a .png that is not an image. A refused request (queue full) waits a second before the
client's next one, as a person would.

Report (Markdown on stdout, JSON with `--json`): requests completed, refused (with the message
the client got), failed (with their messages), cancelled, lost; p50/p95 latency of the completed
ones; the server's RSS (VmRSS) after start, after a warm-up (one request per mode) and after
the load; files under the server's temporary directory after the warm-up, at their peak, after
the load and after shutdown; result folders at their peak against the policy's bound, and once
the closed clients' sessions have ended (their folders go with them).

Exit status 1 when a request is lost silently (no result and no message, or no answer before
`--timeout-s`), when the cancel does not stop its generation, when the broken file gets no
readable message, when RSS grows more than `--max-rss-growth-mb` over the warm-up, when result
folders exceed the policy (each client session keeps at most
`ui.temp_files.RESULTS_PER_SESSION`), when a file is left in the temporary directory after
shutdown, or when the server dies; 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from codi.store.assets import EXAMPLES_DIR  # noqa: E402
from ui.temp_files import RESULTS_PER_SESSION  # noqa: E402

FAST = {"steps": 2, "image_size": 64, "num_frames": 3, "randomize_seed": False, "seed": 3}
#: (name, /generate arguments; file inputs are example names, sent with handle_file).
MODES: list[tuple[str, dict[str, Any]]] = [
    ("text→image", {"text": "a red square", "outputs": ["image"]}),
    ("text→audio", {"text": "a bell rings", "outputs": ["audio"]}),
    ("text→text", {"text": "a blue circle", "outputs": ["text"]}),
    ("text→image+audio", {"text": "rain on a roof", "outputs": ["image", "audio"]}),
    ("image→text", {"text_on": False, "image": "sunset.png", "outputs": ["text"]}),
    ("audio→image", {"text_on": False, "audio": "bell.wav", "outputs": ["image"]}),
    ("text→video", {"text": "a ball bounces", "outputs": ["video"]}),
    ("text→all", {"text": "a city at night", "outputs": ["text", "image", "audio", "video"]}),
]
FILE_FIELDS = ("image", "audio", "video")
#: Steps of the request the cancelling client stops midway (the most the form allows, at
#: 256 px with audio: long enough to catch it running).
CANCEL_STEPS = 200


@dataclass
class Outcome:
    """One request's fate: completed, refused, failed, cancelled or lost, and why."""

    client: str
    mode: str
    kind: str
    seconds: float
    message: str = ""


@dataclass
class Tally:
    """Every outcome, thread-safe, plus the temp-directory peaks a sampler saw."""

    outcomes: list[Outcome] = field(default_factory=list)
    peak_files: int = 0
    peak_result_folders: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """The process's resident memory (VmRSS) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def result_folders(root: Path) -> int:
    """Result folders the studio holds now (`<process folder>/results/<studio>/<NNNN>`)."""
    return sum(1 for p in root.glob("codi-studio-*/results/*/*") if p.is_dir())


def arguments(mode: dict[str, Any]) -> dict[str, Any]:
    from gradio_client import handle_file

    return {k: handle_file(str(EXAMPLES_DIR / v)) if k in FILE_FIELDS else v
            for k, v in (FAST | mode).items()}


def classify(error: BaseException) -> tuple[str, str]:
    """(kind, message) of a request that raised."""
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError

    message = str(error).strip()
    if isinstance(error, QueueError):
        return "refused", message
    if isinstance(error, AppError) and "cancelled" in message.lower():
        return "cancelled", message
    if isinstance(error, TimeoutError):
        return "lost", f"no answer before the deadline ({message or type(error).__name__})"
    return ("failed", message) if message else ("lost", f"{type(error).__name__} without text")


def run_one(client, name: str, mode: str, values: dict[str, Any], deadline: float,
            tally: Tally) -> str:
    """Send one /generate and record its outcome; returns its kind."""
    started = time.perf_counter()
    try:
        job = client.submit(**arguments(values), api_name="/generate")
        out = job.result(timeout=max(1.0, deadline - time.monotonic()))
        status = out[-1] if isinstance(out, (list, tuple)) else ""
        kind, message = (("completed", "") if "Done" in str(status)
                         else ("lost", f"unexpected reply {str(out)[:200]}"))
    except Exception as error:  # every failure is sorted, none escapes the thread
        kind, message = classify(error)
    tally.add(Outcome(name, mode, kind, time.perf_counter() - started, message))
    return kind


def connect(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


def plain_client(url: str, index: int, requests: int, deadline: float, tally: Tally) -> None:
    """`requests` generations in turn, the modes cycling from this client's own start."""
    name = f"client{index:02d}"
    try:
        client = connect(url)
    except Exception as error:
        for _ in range(requests):
            tally.add(Outcome(name, "connect", "failed", 0.0, f"could not connect: {error}"))
        return
    try:
        for k in range(requests):
            if time.monotonic() > deadline:
                tally.add(Outcome(name, "not sent", "lost", 0.0, "no time left to send it"))
                continue
            mode, values = MODES[(index + k) % len(MODES)]
            if run_one(client, name, mode, values, deadline, tally) == "refused":
                time.sleep(1.0)
    finally:
        client.close()


def cancelling_client(url: str, deadline: float, tally: Tally) -> None:
    """Start a long generation, wait until it runs (while time is left), cancel it."""
    from gradio_client.utils import Status

    client = connect(url)
    started = time.perf_counter()
    values = arguments({"text": "cancel me", "outputs": ["image", "audio"],
                        "steps": CANCEL_STEPS, "image_size": 256})
    try:
        job = client.submit(**values, api_name="/generate")
        waiting = {Status.STARTING, Status.JOINING_QUEUE, Status.IN_QUEUE, Status.SENDING_DATA}
        while (not job.done() and job.status().code in waiting
               and time.monotonic() < deadline - 10):
            time.sleep(0.1)
        # the job runs before the studio has registered it: ask again until the studio
        # says it is cancelling, as a person pressing Cancel again would
        while not job.done() and time.monotonic() < deadline - 10:
            if str(client.predict(api_name="/cancel")).startswith("Cancelling"):
                break
            time.sleep(0.2)
        out = job.result(timeout=max(1.0, deadline - time.monotonic()))
        kind, message = "completed", f"finished before the cancel: {str(out[-1])[:100]}"
    except Exception as error:
        kind, message = classify(error)
    finally:
        client.close()
    tally.add(Outcome("canceller", "cancel midway", kind, time.perf_counter() - started, message))


def broken_file_client(url: str, folder: Path, deadline: float, tally: Tally) -> None:
    """Send a .png that is not an image until the queue takes it: the answer must be a
    readable message (a refusal by a full queue is retried every 2 s up to the deadline)."""
    from gradio_client import handle_file

    bad = folder / "holiday.png"
    bad.write_bytes(b"this is not a picture at all")
    client = connect(url)
    try:
        values = {**FAST, "text_on": False, "outputs": ["image"], "image": handle_file(str(bad))}
        started = time.perf_counter()
        kind, message = "refused", ""
        while kind == "refused" and time.monotonic() < deadline:
            try:
                client.predict(**values, api_name="/generate")
                kind, message = "lost", "a broken image was accepted"
            except Exception as error:
                kind, message = classify(error)
                if kind == "refused":
                    time.sleep(2)
        tally.add(Outcome("broken-file", "broken .png", kind, time.perf_counter() - started,
                          message))
    finally:
        client.close()


def sample_temp(tmp: Path, tally: Tally, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        files, folders = count_files(tmp), result_folders(tmp)
        with tally.lock:
            tally.peak_files = max(tally.peak_files, files)
            tally.peak_result_folders = max(tally.peak_result_folders, folders)


def start_server(tmp: Path, log: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    """`python app.py --model tiny` on a free loopback port with TMPDIR=tmp; waits until it
    answers."""
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp), "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("GRADIO_TEMP_DIR", None)
    cmd = [sys.executable, str(REPO / "app.py"), "--model", "tiny", "--host", "127.0.0.1",
           "--port", str(port), "--queue-size", str(args.queue_size),
           "--workers", str(args.workers), "--device", "cpu"]
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + args.start_timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited {proc.returncode}: {log.read_text()[-500:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"app.py did not answer in {args.start_timeout_s:.0f} s")
        try:
            connect(url).close()
            return proc, url
        except Exception:  # not listening yet
            time.sleep(0.5)


def stop_server(proc: subprocess.Popen) -> int:
    """SIGTERM (how a host stops it), then wait; kill only if it hangs."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def wait_for_leave(tmp: Path, args: argparse.Namespace) -> tuple[int, float]:
    """Result folders once the closed clients' sessions end (Gradio notices a closed client
    at its next heartbeat, about 15 s), waiting up to `--leave-wait-s`; and the wait."""
    started = time.monotonic()
    while (left := result_folders(tmp)) and time.monotonic() - started < args.leave_wait_s:
        time.sleep(0.5)
    return left, time.monotonic() - started


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def load(args: argparse.Namespace, tmp: Path, work: Path) -> dict[str, Any]:
    """Start the server, warm it up, run every client, shut it down; the measurements."""
    report: dict[str, Any] = {"clients": args.clients, "requests": args.requests,
                              "queue_size": args.queue_size, "workers": args.workers}
    proc, url = start_server(tmp, work / "server.log", args)
    tally = Tally()
    try:
        report["rss_start_mb"] = rss_mb(proc.pid)
        # one request per mode first: each mode's first run loads code and caches (media
        # readers, JIT-compiled audio kernels) that stay; RSS growth is measured after them
        warm = connect(url)
        for mode, values in MODES:
            run_one(warm, "warm-up", mode, values, time.monotonic() + 120, tally)
        warm.close()
        report["warm_up"] = [asdict(o) for o in tally.outcomes[-len(MODES):]]
        del tally.outcomes[-len(MODES):]
        report["rss_before_mb"] = rss_mb(proc.pid)
        report["temp_files_before"] = count_files(tmp)
        started = time.monotonic()
        deadline = started + args.timeout_s
        threads = [threading.Thread(target=plain_client,
                                    args=(url, i, args.requests, deadline, tally))
                   for i in range(args.clients)]
        threads += [threading.Thread(target=cancelling_client, args=(url, deadline, tally)),
                    threading.Thread(target=broken_file_client,
                                     args=(url, work, deadline, tally))]
        stop = threading.Event()
        sampler = threading.Thread(target=sample_temp, args=(tmp, tally, stop), daemon=True)
        sampler.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, deadline + 30 - time.monotonic()))
        report["hung_threads"] = sum(t.is_alive() for t in threads)
        report["wall_s"] = time.monotonic() - started
        stop.set()
        report["rss_after_mb"] = rss_mb(proc.pid)
        report["temp_files_after_load"] = count_files(tmp)
        report["result_folders_after_load"] = result_folders(tmp)
        report["server_alive"] = proc.poll() is None
        report["result_folders_after_leave"], report["leave_s"] = wait_for_leave(tmp, args)
    finally:
        report["server_exit"] = stop_server(proc)
    time.sleep(0.5)
    report["temp_files_after_shutdown"] = count_files(tmp)
    # files, and our own folders even when empty (others' empty folders, such as torch's
    # compile cache directory, are not counted)
    report["left_behind"] = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*")
                                   if p.is_file() or p.name.startswith("codi-studio-"))[:20]
    with tally.lock:
        outcomes = list(tally.outcomes)
        report["temp_files_peak"] = tally.peak_files
        report["result_folders_peak"] = tally.peak_result_folders
    report["outcomes"] = [asdict(o) for o in outcomes]
    return summarize(report, outcomes, args)


def summarize(report: dict[str, Any], outcomes: list[Outcome],
              args: argparse.Namespace) -> dict[str, Any]:
    """Counts, latency, the policy bound and the verdict."""
    kinds = ("completed", "refused", "failed", "cancelled", "lost")
    report["counts"] = {k: sum(o.kind == k for o in outcomes) for k in kinds}
    report["expected"] = args.clients * args.requests + 2
    latencies = [o.seconds for o in outcomes if o.kind == "completed" and o.client != "canceller"]
    report["p50_s"], report["p95_s"] = percentile(latencies, 50), percentile(latencies, 95)
    report["messages"] = {k: sorted({o.message for o in outcomes if o.kind == k})
                          for k in ("refused", "failed", "cancelled", "lost")}
    # each session keeps at most RESULTS_PER_SESSION folders; the warm-up's, the cancel's
    report["result_folder_bound"] = (args.clients * min(args.requests, RESULTS_PER_SESSION)
                                     + min(len(MODES), RESULTS_PER_SESSION) + 1)
    report["rss_growth_mb"] = report["rss_after_mb"] - report["rss_before_mb"]
    broken = [o for o in outcomes if o.client == "broken-file"]
    report["broken_file"] = broken[0].message if broken else ""
    problems = []
    if report["counts"]["lost"] or len(outcomes) != report["expected"]:
        problems.append(f"{report['counts']['lost']} lost, {len(outcomes)} of "
                        f"{report['expected']} requests accounted for")
    if report["rss_growth_mb"] > args.max_rss_growth_mb:
        problems.append(f"RSS grew {report['rss_growth_mb']:.0f} MB "
                        f"(> {args.max_rss_growth_mb:.0f} MB)")
    if report["result_folders_peak"] > report["result_folder_bound"]:
        problems.append(f"{report['result_folders_peak']} result folders at the peak "
                        f"(> {report['result_folder_bound']})")
    if report["temp_files_after_shutdown"] or report["left_behind"]:
        problems.append(f"left after shutdown: {', '.join(report['left_behind'])}")
    if not report["server_alive"] or report["hung_threads"]:
        problems.append("the server died or clients hung")
    cancel = [o for o in outcomes if o.client == "canceller"]
    if cancel and cancel[0].kind != "cancelled":
        problems.append(f"the cancel did not stop its generation ({cancel[0].message})")
    if broken and broken[0].kind != "failed":
        problems.append(f"the broken file got no readable message ({broken[0].kind})")
    report["problems"] = problems
    return report


def markdown(report: dict[str, Any]) -> str:
    c = report["counts"]

    def sec(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f} s"

    lines = [
        f"{report['clients']} clients × {report['requests']} requests + 1 cancel + 1 broken "
        f"file, queue {report['queue_size']}, workers {report['workers']}: "
        f"{report['wall_s']:.0f} s",
        f"- completed {c['completed']}, refused {c['refused']}, failed {c['failed']}, "
        f"cancelled {c['cancelled']}, lost {c['lost']} (of {report['expected']})",
        f"- latency of the completed: p50 {sec(report['p50_s'])}, p95 {sec(report['p95_s'])}",
        f"- server RSS: {report['rss_start_mb']:.0f} MB at start, {report['rss_before_mb']:.0f} "
        f"MB after a warm-up, {report['rss_after_mb']:.0f} MB after the load "
        f"({report['rss_growth_mb']:+.0f} MB)",
        f"- temp files: {report['temp_files_before']} after the warm-up, "
        f"{report['temp_files_peak']} at the peak, {report['temp_files_after_load']} after the "
        f"load, {report['temp_files_after_shutdown']} after shutdown",
        f"- result folders: {report['result_folders_peak']} at the peak (bound "
        f"{report['result_folder_bound']}), {report['result_folders_after_load']} after the "
        f"load, {report['result_folders_after_leave']} {report['leave_s']:.0f} s after the "
        "clients closed",
        f"- the broken file's answer: {report['broken_file']!r}",
    ]
    for kind, messages in report["messages"].items():
        lines += [f"- {kind}: {m!r}" for m in messages[:5]]
    lines.append("- verdict: " + ("; ".join(report["problems"]) or "ok"))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=20, help="concurrent clients (20)")
    p.add_argument("--requests", type=int, default=10, help="requests per client (10)")
    p.add_argument("--timeout-s", type=float, default=900.0,
                   help="wall-time bound of the load phase (900)")
    p.add_argument("--queue-size", type=int, default=16, help="app.py --queue-size (16)")
    p.add_argument("--workers", type=int, default=1, help="app.py --workers (1)")
    p.add_argument("--max-rss-growth-mb", type=float, default=300.0,
                   help="most RSS growth over the warm-up (300 MB)")
    p.add_argument("--start-timeout-s", type=float, default=180.0,
                   help="how long app.py may take to answer (180)")
    p.add_argument("--leave-wait-s", type=float, default=40.0,
                   help="how long to wait for the closed sessions' folders to go (40)")
    p.add_argument("--json", type=Path, help="also write the report here")
    args = p.parse_args(argv)
    if min(args.clients, args.requests, args.queue_size, args.workers) < 1:
        p.error("--clients, --requests, --queue-size and --workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="codi-load-") as base:
        tmp, work = Path(base) / "server-tmp", Path(base) / "work"
        tmp.mkdir()
        work.mkdir()
        try:
            report = load(args, tmp, work)
        except (RuntimeError, OSError) as error:  # TimeoutError is an OSError
            print(f"load test could not run: {error}", file=sys.stderr)
            return 2
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
