"""`python -m codi batch SESSION`: generate a session's grid from the command line.

Under `accelerate launch -m codi batch SESSION` (or `torchrun`) every process takes its share of
the cells (a share of every system, so slow systems are spread evenly) on its own device, and all
of them write to the same session database; reruns only do what is left.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codi.errors import CoDiUserError
from codi.evaluation import data_dir, database_path, open_store
from codi.evaluation.grid import GridSummary, default_pipeline_for, generate_session


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session", metavar="SESSION",
                        help="session id (see the studio's Evaluate tab)")
    parser.add_argument("--data-dir", type=Path,
                        help="data folder holding evaluation.sqlite3 (default: $CODI_DATA_DIR, "
                             "else ./codi-data)")
    parser.add_argument("--shard", metavar="I/N",
                        help="do shard I of N (from 0) yourself instead of asking accelerate")
    parser.add_argument("--quiet", action="store_true", help="no line per cell")


def parse_shard(text: str) -> tuple[int, int]:
    """"1/4" → (1, 4)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise CoDiUserError(f"--shard {text!r}: write I/N, e.g. 0/2.") from None
    if not 0 <= index < count:
        raise CoDiUserError(f"--shard {text!r}: I runs from 0 to N - 1.")
    return index, count


def process_shard() -> tuple[tuple[int, int], str | None]:
    """This process's shard and device under `accelerate launch` or `torchrun` (a single
    process: (0, 1), auto). Without CUDA the processes share the CPU (gloo)."""
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    device = None if state.device.type == "cpu" else str(state.device)
    return (state.process_index, state.num_processes), device


def run_batch(session_id: str, folder: Path | None = None, shard: tuple[int, int] | None = None,
              quiet: bool = False) -> GridSummary:
    """Generate this process's pending cells of the session; returns what was done."""
    folder = data_dir(folder)
    if not database_path(folder).is_file():
        raise CoDiUserError(f"{folder} holds no evaluation database; pass --data-dir or set "
                            "CODI_DATA_DIR.")
    store = open_store(folder)
    store.session(session_id)
    device = None
    if shard is None:
        shard, device = process_shard()
    tag = f"[{shard[0]}/{shard[1]}] " if shard[1] > 1 else ""

    def report(finished: int, total: int, cell) -> None:
        if not quiet:
            state = store.cell(cell.id)
            print(f"{tag}{finished}/{total} {cell.prompt_id} · {cell.system} · seed {cell.seed}: "
                  f"{state.status}{f' ({state.error})' if state.error else ''}", flush=True)

    summary = generate_session(store, session_id, folder, on_progress=report, shard=shard,
                               pipeline_for=default_pipeline_for(device))
    counts = store.session(session_id)["counts"]
    print(f"{tag}generated {summary.generated}, failed {summary.failed}, already done "
          f"{summary.skipped}, taken by another writer {summary.claimed_elsewhere}; "
          f"session {session_id}: {counts['done']} done, {counts['pending']} pending, "
          f"{counts['failed']} failed", file=sys.stderr)
    return summary


def run_batch_command(args: argparse.Namespace) -> int:
    """The CLI entry: 0 when every cell of this shard is done, 1 when some failed."""
    shard = parse_shard(args.shard) if args.shard else None
    summary = run_batch(args.session, args.data_dir, shard, args.quiet)
    return 1 if summary.failed else 0
