"""Generate a session's grid: every pending prompt × system × seed cell, one at a time.

Each cell is marked in the database as soon as its files are written, so a run that is cancelled,
killed or restarted only does what is left. A cell that fails records its error and the run goes
on; a later run tries it again. Each cell is claimed in the database before it is generated, so
two writers on one session (the studio and `python -m codi batch`) never generate a cell twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from codi.errors import CoDiUserError, GenerationCancelled
from codi.evaluation.spec import SessionSpec, SystemSpec
from codi.evaluation.store import Cell, EvaluationStore, claim_owner

ProgressFn = Callable[[int, int, Cell], None]
PipelineFactory = Callable[[SystemSpec], Any]


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class GridSummary:
    """What a run did: cells of this shard, and how many were generated, failed, already done."""

    total: int = 0
    generated: int = 0
    failed: int = 0
    skipped: int = 0
    claimed_elsewhere: int = 0
    cancelled: bool = False
    errors: dict[int, str] = field(default_factory=dict)


def media_folder(session_id: str) -> Path:
    """Where a session's generated files live, relative to the data folder."""
    return Path("sessions") / session_id / "media"


def shard_cells(cells: list[Cell], shard: tuple[int, int]) -> list[Cell]:
    """Shard `index` of `count`, in cell order: cells sorted by system, then every count-th from
    the index-th, so each shard gets its share of every system (and the same cells on a rerun)."""
    index, count = shard
    if not (isinstance(count, int) and count >= 1 and isinstance(index, int)
            and 0 <= index < count):
        raise CoDiUserError(f"Shard {index} of {count}: the index runs from 0 to count - 1.")
    by_system = sorted(cells, key=lambda c: (c.system, c.id))
    return sorted(by_system[index::count], key=lambda c: c.id)


def default_pipeline_for(device: str | None = None) -> PipelineFactory:
    """A factory that opens each distinct (model, runtime) once, through `open_pipeline` (`device`
    replaces an "auto" device, e.g. the GPU accelerate gives this process)."""
    cache: dict[str, Any] = {}

    def pipeline_for(system: SystemSpec) -> Any:
        import json

        from codi.pipeline.factory import open_pipeline
        from codi.store.model_store import resolve_model

        key = json.dumps([system.model, system.runtime], sort_keys=True)
        if key not in cache:
            options = system.runtime_options()
            if device is not None and options.device == "auto":
                options = options.replace(device=device)
            cache[key] = open_pipeline(resolve_model(system.model).folder, options)
        return cache[key]

    return pipeline_for


def cell_request(spec: SessionSpec, cell: Cell, data_dir: Path):
    """The `GenerationRequest` of one cell (stored input paths are relative to `data_dir`)."""
    from codi.pipeline.request import ConditionInput, GenerationRequest

    prompt = spec.prompt(cell.prompt_id)
    inputs = [ConditionInput(item.modality,
                             item.value if item.modality == "text" else data_dir / item.value,
                             item.weight)
              for item in prompt.inputs]
    settings = spec.system(cell.system).generation_settings(cell.seed)
    return GenerationRequest(inputs=inputs, outputs=list(prompt.outputs), settings=settings)


def _outputs(paths: list[Path], data_dir: Path) -> dict[str, str]:
    """{modality: relative path} from files named out_<modality>_0.<ext>."""
    return {p.stem.split("_")[1]: p.relative_to(data_dir).as_posix() for p in paths}


def generate_cell(pipeline: Any, spec: SessionSpec, cell: Cell, data_dir: Path,
                  cancel: CancelFlag | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """Generate and save one cell; returns its outputs and metadata."""
    started = time.perf_counter()
    result = pipeline(cell_request(spec, cell, data_dir), cancel=cancel)
    folder = data_dir / media_folder(cell.session_id) / f"cell_{cell.id}"
    paths = result.save(folder, "out")
    metadata = {**result.metadata, "texts": list(result.texts),
                "seconds": round(time.perf_counter() - started, 3)}
    return _outputs(paths, data_dir), metadata


def generate_session(
    store: EvaluationStore,
    session_id: str,
    data_dir: Path,
    *,
    pipeline_for: PipelineFactory | None = None,
    on_progress: ProgressFn | None = None,
    cancel: CancelFlag | None = None,
    shard: tuple[int, int] = (0, 1),
) -> GridSummary:
    """Generate every pending or failed cell of this shard, marking each as soon as it is done.

    `pipeline_for(system)` gives the pipeline of a system (default: one per model and runtime,
    opened on first use); `on_progress(finished, total, cell)` follows each cell; `cancel` (a
    `threading.Event`) stops between cells and between denoising steps, leaving the rest pending.
    """
    data_dir = Path(data_dir)
    spec = store.spec(session_id)
    pipeline_for = pipeline_for or default_pipeline_for()
    mine = shard_cells(store.cells(session_id), shard)
    summary = GridSummary(total=len(mine), skipped=sum(c.status == "done" for c in mine))
    finished = summary.skipped
    owner = claim_owner()
    for cell in (c for c in mine if c.status != "done"):
        if cancel is not None and cancel.is_set():
            summary.cancelled = True
            break
        if not store.claim_cell(cell.id, owner):
            summary.claimed_elsewhere += 1
            continue
        try:
            outputs, metadata = generate_cell(pipeline_for(spec.system(cell.system)), spec, cell,
                                              data_dir, cancel)
        except GenerationCancelled:
            store.release_cell(cell.id, owner)
            summary.cancelled = True
            break
        except Exception as error:  # noqa: BLE001 — one bad cell must not stop the grid
            message = str(error) if isinstance(error, CoDiUserError) else (
                f"{type(error).__name__}: {error}")
            store.mark_cell(cell.id, "failed", error=message)
            summary.failed += 1
            summary.errors[cell.id] = message
        except BaseException:  # interrupted (KeyboardInterrupt, SystemExit): leave it pending
            store.release_cell(cell.id, owner)
            raise
        else:
            store.mark_cell(cell.id, "done", outputs, metadata)
            summary.generated += 1
        finished += 1
        if on_progress is not None:
            on_progress(finished, summary.total, cell)
    return summary
