"""The full CoDi fetched at first start: when a start should fetch it, and how.

On a machine with a CUDA GPU, "auto" fetches and converts the fp16 release (`python -m codi
download --variant fp16`) when no full model is in the cache yet; so does "full", asked for on
any device. The CLI fetches in the foreground (`resolve_or_fetch`); the studio serves the
embedded model meanwhile and fetches in the background (`BackgroundFetch`), then switches.
Offline (HF_HUB_OFFLINE), on a CPU with "auto", on a Space (its build preloads the files) or
with CODI_FETCH_FULL=0 nothing is fetched. Downloads resume, files are checked against the
Hub's sha256 and the conversion goes through a `.partial` folder, as `download` does.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import huggingface_hub.constants

from codi.errors import CoDiUserError
from codi.store.model_store import (
    AUTO,
    MODEL_DIR_ENV,
    SPACE_ENV,
    ResolvedModel,
    default_model_dir,
    describe,
    resolve_model,
)

#: auto (default): fetch on a CUDA machine; 1: on any device; 0: never.
FETCH_ENV = "CODI_FETCH_FULL"
#: The release fetched: half the bytes of fp32, what a GPU runs anyway.
FULL_VARIANT = "fp16"
TRUE = ("1", "true", "yes", "on", "always")
FALSE = ("0", "false", "no", "off", "never")

Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def hub_offline() -> bool:
    """Whether the Hugging Face Hub is switched off (HF_HUB_OFFLINE, now or at import)."""
    live = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE
    return live or bool(huggingface_hub.constants.HF_HUB_OFFLINE)


def full_model_present() -> bool:
    """Whether the converted full model is in the cache (`default_model_dir()`)."""
    return (default_model_dir() / "model_index.json").is_file()


def fetch_wanted(spec: str | Path | None, device_type: str) -> bool:
    """Whether a start with model `spec` on `device_type` ("cuda", "cpu", ...) should fetch
    the full CoDi: "auto" on CUDA (or anywhere with CODI_FETCH_FULL=1), or "full", when it
    is absent, the Hub is reachable and neither CODI_MODEL_DIR nor a Space decides."""
    setting = os.environ.get(FETCH_ENV, "auto").strip().lower()
    text = "auto" if spec is None else str(spec).strip().lower()
    if setting in FALSE or hub_offline() or full_model_present():
        return False
    if text == "full":
        return not os.environ.get(SPACE_ENV)
    if text not in AUTO or os.environ.get(MODEL_DIR_ENV) or os.environ.get(SPACE_ENV):
        return False
    return device_type == "cuda" or setting in TRUE


def fetch_full(log: Log = _stderr,
               on_bytes: Callable[[str, int, int | None], None] | None = None) -> ResolvedModel:
    """Download, verify and convert the fp16 release into `default_model_dir()`."""
    from codi.store.download import download

    log(f"fetching the full CoDi ({FULL_VARIANT}, about 11 GB) into {default_model_dir()}; "
        f"this happens once (set {FETCH_ENV}=0 to skip)")
    return describe(download(default_model_dir(), variant=FULL_VARIANT, log=log,
                             on_bytes=on_bytes))


def resolve_or_fetch(spec: str | Path | None, device_type: str,
                     log: Log = _stderr) -> ResolvedModel:
    """`resolve_model(spec)`, fetching the full CoDi first when `fetch_wanted` says so.

    A failed fetch for "auto" falls back to the embedded model with a note saying why; for
    "full" it is the error."""
    if not fetch_wanted(spec, device_type):
        return resolve_model(spec)
    if str(spec).strip().lower() == "full":
        return fetch_full(log)
    try:
        return fetch_full(log)
    except CoDiUserError as error:
        embedded = resolve_model("embedded")
        return replace(embedded, note=f"{embedded.note} The full CoDi could not be fetched "
                                      f"({error}); the embedded model serves.".strip())


@dataclass(frozen=True)
class FetchProgress:
    """Where a background fetch stands: its phase, the newest line it logged, bytes so far
    of the file downloading (`total` None when unknown), and the error when it failed."""

    phase: str = "starting"
    detail: str = ""
    file: str = ""
    done: int = 0
    total: int | None = None
    error: str = ""

    @property
    def busy(self) -> bool:
        return self.phase not in ("ready", "failed")


#: Log lines' first word → phase.
PHASES = {"downloading": "downloading", "verifying": "verifying", "converting": "converting"}


class BackgroundFetch:
    """Fetches the full CoDi in a daemon thread, then hands it to `on_ready` (the studio's
    switch; its time shows as the "loading" phase). `work` is the fetch itself (default
    `fetch_full`); it is given the thread's log and byte callbacks."""

    def __init__(self, work: Callable[..., ResolvedModel] = fetch_full) -> None:
        self.work = work
        self.on_ready: Callable[[ResolvedModel], None] = lambda model: None
        self._progress = FetchProgress()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="codi-fetch-full", daemon=True)

    def start(self, on_ready: Callable[[ResolvedModel], None] | None = None) -> None:
        if on_ready is not None:
            self.on_ready = on_ready
        self._thread.start()

    def join(self, timeout: float | None = None) -> FetchProgress:
        self._thread.join(timeout)
        return self.progress()

    def progress(self) -> FetchProgress:
        with self._lock:
            return self._progress

    def _set(self, **changes: object) -> None:
        with self._lock:
            self._progress = replace(self._progress, **changes)

    def _log(self, line: str) -> None:
        _stderr(line)
        phase = PHASES.get(line.split(" ", 1)[0], self.progress().phase)
        self._set(phase=phase, detail=line)

    def _bytes(self, path: str, done: int, total: int | None) -> None:
        self._set(phase="downloading", file=path, done=done, total=total)

    def _run(self) -> None:
        try:
            model = self.work(log=self._log, on_bytes=self._bytes)
            self._set(phase="loading", detail=f"loading {model.folder}")
            self.on_ready(model)
        except Exception as error:  # noqa: BLE001 - a failed fetch must never stop the studio
            self._log(f"the full CoDi could not be prepared: {error}")
            self._set(phase="failed", error=str(error))
            return
        self._set(phase="ready", detail="")
