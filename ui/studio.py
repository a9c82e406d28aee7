"""The studio's engine: one pipeline, per-session cancellation, results saved as files.

The UI hands it a validated `GenerationRequest` and gets back file paths and metadata; it never
sees a tensor. Generation runs through `run_pipeline`, which ZeroGPU may move onto a GPU.
"""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codi.engine.runtime import RuntimeOptions
from codi.media.limits import MediaLimits
from codi.pipeline.codi_pipeline import CoDiPipeline
from codi.pipeline.factory import open_pipeline
from codi.pipeline.previews import Preview
from codi.pipeline.request import GenerationRequest
from codi.pipeline.result import GenerationResult
from codi.store.full_fetch import BackgroundFetch
from codi.store.model_store import ResolvedModel, resolve_model
from codi.store.tiny_random import TINY_RANDOM_KIND
from ui.form import apply_model_defaults
from ui.previews import PreviewBoard
from ui.status import fetch_markdown, status_markdown
from ui.temp_files import RESULTS_PER_SESSION, scratch_dir
from ui.zerogpu import estimate_gpu_seconds, gpu_task

ProgressFn = Callable[..., Any]


@gpu_task(duration=lambda pipeline, request, *rest: estimate_gpu_seconds(request))
def run_pipeline(
    pipeline: CoDiPipeline,
    request: GenerationRequest,
    on_step: Callable[[int, int], None],
    cancel: threading.Event,
    on_preview: Callable[[Preview], None] | None = None,
) -> GenerationResult:
    """One generation (on ZeroGPU: inside a GPU slot sized by `estimate_gpu_seconds`)."""
    return pipeline(request, on_step=on_step, cancel=cancel, on_preview=on_preview)


def release_cached_memory() -> None:
    """Hand a dropped pipeline's cached GPU blocks back (nothing to do on a CPU)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _no_progress(step: int, total: int) -> None:
    """`on_step` when nobody watches."""


@dataclass
class StudioResult:
    """A finished generation as files: what the result widgets and the history show."""

    outputs: list[str]
    texts: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    audio: str | None = None
    video: str | None = None
    files: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    thumbnail: str | None = None
    seconds: float = 0.0

    @property
    def seed(self) -> int:
        return int(self.metadata["settings"]["seed"])


def step_reporter(progress: ProgressFn) -> Callable[[int, int], None]:
    """An `on_step` that reports "step k/N, about T s left" (the rate measured from step 1)."""
    started = time.perf_counter()
    first: list[float] = []

    def on_step(step: int, total: int) -> None:
        now = time.perf_counter()
        if not first:
            first.append(now)
        if step >= total:
            desc = "Decoding the outputs…"
        else:
            per_step = (now - first[0]) / (step - 1) if step > 1 else now - started
            desc = f"Denoising: step {step}/{total}, about {per_step * (total - step):.0f} s left"
        progress((step, total), desc=desc, unit="steps")

    return on_step


class Studio:
    """Owns the pipeline and the session bookkeeping; thread-safe for several workers.

    Results are saved in numbered folders under `output_dir` (default: under the process's
    temporary folder, `ui.temp_files`). Each session keeps its newest `keep` folders (what its
    history can still recall); older ones, and all of a session's folders when it ends
    (`forget`), are deleted.
    """

    def __init__(
        self,
        model: str | Path | None = "auto",
        runtime: RuntimeOptions | None = None,
        output_dir: Path | None = None,
        limits: MediaLimits | None = None,
        keep: int = RESULTS_PER_SESSION,
    ) -> None:
        self.options = runtime or RuntimeOptions.from_env()
        self.limits = limits or MediaLimits()
        #: How many times the model was switched (`switch_model`); pages compare it.
        self.model_version = 0
        #: The full CoDi being fetched in the background (`start_fetch`), if any.
        self.fetch: BackgroundFetch | None = None
        self._use(resolve_model(model), None)
        self.output_dir = Path(output_dir) if output_dir else scratch_dir("results")
        self.keep = keep
        self._cancels: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._folders: dict[str, deque[Path]] = {}
        #: Live previews of the sessions that asked for them (the page's switch).
        self.previews = PreviewBoard()

    def _use(self, model: ResolvedModel, pipeline: CoDiPipeline | None) -> None:
        """Serve `model` (its pipeline opened here unless given)."""
        pipeline = pipeline or open_pipeline(model.folder, self.options)
        pipeline.limits = self.limits
        self.model, self.pipeline = model, pipeline
        self.device = str(pipeline.device)
        self.dtype = str(pipeline.dtype).removeprefix("torch.")
        self.runtime = pipeline.runtime.summary(pipeline.device, pipeline.dtype)

    def switch_model(self, model: ResolvedModel) -> None:
        """Serve `model` from now on: its pipeline is opened first (the old one serves
        meanwhile); generations already running finish on the old one."""
        try:
            pipeline = open_pipeline(model.folder, self.options)
        except BaseException:
            release_cached_memory()  # what a failed load (say, out of GPU memory) had taken
            raise
        with self._lock:
            self._use(model, pipeline)
            self.model_version += 1
        release_cached_memory()

    def start_fetch(self, fetch: BackgroundFetch) -> None:
        """Fetch the full CoDi in the background and switch to it when it is ready."""
        self.fetch = fetch
        fetch.start(on_ready=self.switch_model)

    @property
    def preparing(self) -> bool:
        """Whether a background fetch is still under way (the banner then refreshes)."""
        return self.fetch is not None and self.fetch.progress().busy

    @property
    def tiny_random(self) -> bool:
        """Whether the tiny random-weight model serves (the form then asks for little work)."""
        return self.model.kind == TINY_RANDOM_KIND

    def status(self) -> str:
        """The banner: the model serving, and a background fetch's progress or outcome."""
        if self.fetch is None:
            return status_markdown(self.model, self.device, self.dtype)
        progress = self.fetch.progress()
        banner = status_markdown(self.model, self.device, self.dtype,
                                 how_to_upgrade=progress.phase == "failed")
        return fetch_markdown(progress, self.model.kind) + "\n\n" + banner

    def runtime_markdown(self) -> str:
        """The runtime options in force (set when the studio starts), one line."""
        r = self.runtime
        budget = f"{r['memory_budget_gb']:g} GB" if r["memory_budget_gb"] else "none"
        return (f"Runs on **{r['device']}** in **{r['dtype']}** · attention {r['attention']} · "
                f"quantize {r['quantize']} · offload {r['offload']} · memory budget {budget}. "
                "Set these when starting: `python app.py --device … --dtype … --quantize … "
                "--offload …` (or CODI_DEVICE, CODI_DTYPE, …).")

    def cancel(self, session: str) -> bool:
        """Ask the session's running generation to stop after its current step."""
        with self._lock:
            event = self._cancels.get(session)
        if event is None:
            return False
        event.set()
        return True

    def generate(
        self, request: GenerationRequest, session: str, progress: ProgressFn | None = None
    ) -> StudioResult:
        """Run one request and save its outputs (CoDiUserError / GenerationCancelled escape)."""
        pipeline = self.pipeline  # a model switch mid-run leaves this run on its pipeline
        request.settings = apply_model_defaults(request.settings, pipeline.defaults)
        event = threading.Event()
        with self._lock:
            self._cancels[session] = event
        started = time.perf_counter()
        try:
            on_step = step_reporter(progress) if progress is not None else _no_progress
            result = run_pipeline(pipeline, request, on_step, event,
                                  self.previews.sink(session))
        finally:
            self.previews.clear(session)
            with self._lock:
                if self._cancels.get(session) is event:
                    del self._cancels[session]
        folder = self._result_folder(session)
        paths = [str(p) for p in result.save(folder)]
        return self._as_files(request, result, paths, folder, time.perf_counter() - started)

    def _result_folder(self, session: str) -> Path:
        """A new result folder for `session`; its folders beyond the newest `keep` are deleted."""
        with self._lock:
            folder = self.output_dir / f"{next(self._counter):04d}"
            folders = self._folders.setdefault(session, deque())
            folders.append(folder)
            stale = [folders.popleft() for _ in range(len(folders) - self.keep)]
        for old in stale:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def forget(self, session: str) -> int:
        """Delete every result folder of a session that ended; returns how many."""
        with self._lock:
            folders = self._folders.pop(session, deque())
        self.previews.watch(session, False)
        self.previews.clear(session)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        return len(folders)

    def _as_files(
        self, request: GenerationRequest, result: GenerationResult, paths: list[str],
        folder: Path, seconds: float,
    ) -> StudioResult:
        by_suffix = {s: [p for p in paths if p.endswith(s)] for s in (".png", ".wav", ".mp4")}
        notices = list(result.metadata.get("notices", []))
        mux = result.metadata.get("video_audio")
        if mux and mux["audio_duration_s"] > mux["video_duration_s"]:
            notices.append(
                f"The video lasts {mux['video_duration_s']:g} s and the audio "
                f"{mux['audio_duration_s']:g} s: the MP4 plays the first "
                f"{mux['video_duration_s']:g} s of the sound; the WAV has all of it."
            )
        return StudioResult(
            outputs=list(request.outputs),
            texts=list(result.texts),
            images=by_suffix[".png"],
            audio=(by_suffix[".wav"] or [None])[0],
            video=(by_suffix[".mp4"] or [None])[0],
            files=paths,
            metadata=result.metadata,
            notices=notices,
            thumbnail=str(result.save_thumbnail(folder / "thumbnail.png")),
            seconds=seconds,
        )
