"""Full-scale dry run of the real-weights path, with random weights of the official layout.

Nobody can test the 19.8 GB official download in CI, yet a user's first run goes
download → `python -m codi.convert` → `CoDiPipeline.from_pretrained` → generate. This script walks
that path at full size on the CPU with random tensors of exactly the official keys, shapes and
dtypes (from the by-file manifest), and measures each step:

1. writes the four official-named `.pth` files (plain flat state dicts, `torch.save`), tensor by
   tensor: the file is first saved with its storages left empty (`torch.serialization.skip_data`),
   then memory-mapped shared and filled in place, so no file's worth of tensors is ever held in RAM.
   Skipped when the files already exist in the work folder. Values: N(0, 0.02); ones for norm
   gains (1-D `*.weight`) and BatchNorm variances; `arange` for CLIP position ids; zeros for the
   other integer buffers. The `_possible_extra_keys…` group is left out (a fresh official model
   lacks those keys); the 12 DDPM schedule buffers go into `CoDi_encoders.pth` (where they are in
   the released files is unknown; the converter drops them wherever they are).
2. runs `python -m codi.convert SRC DST --vocab VOCAB [--dtype D]` in a subprocess, as a user would;
3. opens the result with `CoDiPipeline.from_pretrained` in a fresh subprocess per mode and runs
   text→image (256 px) and text→audio for `--steps` DDIM steps, decoders included;
4. prints one JSON summary, and removes what it wrote unless `--keep`.

Memory is reported two ways per subprocess: `peak_rss_mb` (the kernel's ru_maxrss, which counts
memory-mapped file pages that the kernel can drop at will) and `peak_anon_mb` (polled RssAnon:
the memory that really has to fit in RAM).

    .venv/bin/python benchmarks/full_scale_dry_run.py          # full size, fp32 (~46 GB disk)
    .venv/bin/python benchmarks/full_scale_dry_run.py --fp16 --dtype fp16
    .venv/bin/python benchmarks/full_scale_dry_run.py --small  # tiny fixture model, seconds
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import mmap
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARITY = REPO.parent / "shared" / "parity"
DEFAULT_MANIFEST = PARITY / "manifests" / "codi_full_manifest_by_file.json.gz"
DEFAULT_VOCAB = PARITY / "vocab"
DEFAULT_FIXTURES = PARITY / "fixtures"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
ENCODERS_FILE = "CoDi_encoders.pth"
#: Official file → the key prefixes it holds (everything else belongs to the encoders file).
UNET_FILES = {
    "CoDi_video_diffuser_8frames.pth": "model.diffusion_model.unet_image.",
    "CoDi_text_diffuser.pth": "model.diffusion_model.unet_text.",
    "CoDi_audio_diffuser_m.pth": "model.diffusion_model.unet_audio.",
}
SCHEDULE_GROUP = "_unassigned_buffers_"
EXTRA_GROUP = "_possible_extra_keys"
MODES = {"text_to_image": "image", "text_to_audio": "audio"}
PROMPT = "a dog barking on a beach"
RESULT_TAG = "DRY_RUN_RESULT "


# -- 1. the official-layout files ----------------------------------------------------------------


def files_from_manifest(manifest: dict, without_connectors: bool = False) -> dict[str, list[dict]]:
    """Official file name → its tensor entries; schedule buffers into the encoders file."""
    files: dict[str, list[dict]] = {}
    for group, content in manifest.items():
        if (not isinstance(content, dict) or "tensors" not in content
                or group.startswith(EXTRA_GROUP)):
            continue
        target = ENCODERS_FILE if group.startswith(SCHEDULE_GROUP) else group
        files.setdefault(target, []).extend(content["tensors"])
    if without_connectors:
        files = {f: [e for e in es if "connecters" not in e["key"]] for f, es in files.items()}
    return files


def files_from_fixture(fixture_dir: Path) -> dict[str, list[dict]]:
    """The tiny parity model's official keys, shapes and dtypes, split as the released files are."""
    from codi.parity.fixtures import load_weights

    files: dict[str, list[dict]] = {name: [] for name in (*UNET_FILES, ENCODERS_FILE)}
    for key, tensor in load_weights(fixture_dir).items():
        target = next((f for f, p in UNET_FILES.items() if key.startswith(p)), ENCODERS_FILE)
        dtype = str(tensor.dtype).removeprefix("torch.")
        files[target].append({"key": key, "shape": list(tensor.shape), "dtype": dtype})
    return files


def file_bytes(entries: list[dict], fp16: bool) -> int:
    """Payload size of one file."""
    return sum(math.prod(e["shape"]) * _itemsize(e["dtype"], fp16) for e in entries)


def _itemsize(dtype: str, fp16: bool) -> int:
    return 2 if fp16 and dtype.startswith("float") else {"int64": 8, "bool": 1}.get(dtype, 4)


def write_checkpoint(path: Path, entries: list[dict], fp16: bool, seed: int) -> None:
    """One flat state dict, saved by torch.save, filled tensor by tensor through a shared mmap."""
    import torch
    from torch.serialization import set_default_mmap_options, skip_data

    float_dtype = torch.float16 if fp16 else torch.float32
    partial = path.with_name(path.name + ".partial")
    empty = {  # torch.empty only reserves address space: nothing is touched until filled
        e["key"]: torch.empty(
            e["shape"],
            dtype=float_dtype if e["dtype"].startswith("float") else getattr(torch, e["dtype"]),
        )
        for e in entries
    }
    with skip_data():
        torch.save(empty, partial)
    del empty
    with set_default_mmap_options(mmap.MAP_SHARED):
        state = torch.load(partial, mmap=True, weights_only=True)
    generator = torch.Generator().manual_seed(seed)
    for key in list(state):
        fill_like_official(key, state.pop(key), generator)
    del state
    os.replace(partial, path)


def fill_like_official(key: str, tensor, generator) -> None:
    """Sane random values in place: activations of a random net must stay finite."""
    if not tensor.is_floating_point():
        if key.endswith("position_ids"):
            tensor.copy_(tensor.new_tensor(range(tensor.shape[-1])).expand_as(tensor))
        else:
            tensor.zero_()
    elif (tensor.dim() == 1 and key.endswith(".weight")) or key.endswith("running_var"):
        tensor.fill_(1.0)
    else:
        tensor.normal_(0.0, 0.02, generator=generator)


def ensure_checkpoints(
    folder: Path, files: dict[str, list[dict]], fp16: bool, log: Callable[[str], None]
) -> tuple[list[Path], float | None]:
    """Write the files that are missing; returns the files written and the time it took.

    Refuses to start without room for the missing files plus a conversion of the same size.
    """
    folder.mkdir(parents=True, exist_ok=True)
    missing = [name for name in files if not (folder / name).exists()]
    need = sum(file_bytes(files[name], fp16) for name in missing)
    need += sum(file_bytes(entries, fp16) for entries in files.values())
    free = shutil.disk_usage(folder).free
    if need > free:
        raise SystemExit(f"need {need / 1e9:.1f} GB free in {folder} (checkpoints + converted "
                         f"model), have {free / 1e9:.1f} GB")
    started = time.perf_counter()
    for seed, name in enumerate(missing):
        log(f"writing {name} ({file_bytes(files[name], fp16) / 1e9:.2f} GB)")
        write_checkpoint(folder / name, files[name], fp16, seed)
    return [folder / name for name in missing], (time.perf_counter() - started if missing else None)


# -- measuring a subprocess ----------------------------------------------------------------------


def run_measured(cmd: list[str], log_path: Path, poll_s: float = 0.2) -> dict:
    """Run a command; its wall time, exit code, ru_maxrss and polled peak RssAnon (MB)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    with open(log_path, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak_anon = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak_anon = max(peak_anon, _rss_anon_kb(proc.pid))
            time.sleep(poll_s)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "exit_code": proc.returncode,
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "peak_anon_mb": round(peak_anon / 1024),
        "log": str(log_path),
    }


def _rss_anon_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def result_of(log_path: Path) -> dict:
    """The JSON a worker printed (tagged line), or the log's tail as the error."""
    text = log_path.read_text(errors="replace")
    for line in reversed(text.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    return {"error": text[-3000:]}


# -- 3. the worker: open the folder and generate -------------------------------------------------


def record_component_opens() -> dict[str, float]:
    """component name → seconds its `from_pretrained` took, filled as components are opened.

    Hooks the diffusers and transformers base classes, so it sees every way the pipeline opens
    a component (each one is a sub-folder named after it).
    """
    from diffusers import ModelMixin
    from transformers import PreTrainedModel

    loads: dict[str, float] = {}
    for base in (ModelMixin, PreTrainedModel):
        original = base.__dict__["from_pretrained"].__func__

        def from_pretrained(cls, path, *args, _original=original, **kwargs):
            started = time.perf_counter()
            model = _original(cls, path, *args, **kwargs)
            loads[Path(path).name] = round(time.perf_counter() - started, 2)
            return model

        base.from_pretrained = classmethod(from_pretrained)
    return loads


def worker(folder: Path, modes: list[str], steps: int, image_size: int) -> dict:
    """Open a converted folder as a user would and time each mode (runs in its own process)."""
    import numpy as np
    import torch

    from codi.pipeline.codi_pipeline import CoDiPipeline
    from codi.pipeline.request import ConditionInput, GenerationRequest, GenerationSettings

    loads = record_component_opens()
    started = time.perf_counter()
    pipe = CoDiPipeline.from_pretrained(folder)
    summary: dict = {
        "open_s": round(time.perf_counter() - started, 2), "threads": torch.get_num_threads()
    }
    for mode in modes:
        output = MODES[mode]
        before = set(loads)
        marks: list[float] = []
        request = GenerationRequest(
            [ConditionInput("text", PROMPT)], [output],
            GenerationSettings(steps=steps, seed=0, image_size=image_size),
        )
        started = time.perf_counter()
        result = pipe(request, on_step=lambda i, n: marks.append(time.perf_counter()))
        total = time.perf_counter() - started
        media = result.images if output == "image" else result.audios
        values = np.asarray(media[0], dtype=np.float64)
        new = sorted(set(loads) - before)
        summary[mode] = {
            "components_loaded": new,
            "load_s": {name: loads[name] for name in new},
            "time_to_first_step_s": round(marks[0] - started, 2),
            "step_s": [round(b - a, 2) for a, b in zip(marks, marks[1:])],
            "decode_s": result.metadata["timings_s"]["decode"],
            "total_s": round(total, 2),
            "output_shape": list(values.shape),
            "output_finite": bool(np.isfinite(values).all()),
        }
    summary["peak_rss_mb_self"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return summary


# -- the whole run -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST,
                        help="by-file key/shape manifest (default: %(default)s)")
    parser.add_argument("--vocab", type=Path, default=DEFAULT_VOCAB,
                        help="tokenizer vocab folder passed to the converter "
                             "(default: %(default)s)")
    parser.add_argument("--workdir", type=Path,
                        help="where the checkpoints and the converted model go (default: a new "
                             "temporary folder); existing checkpoints there are reused")
    parser.add_argument("--fp16", action="store_true",
                        help="write the fp16 variant (checkpoints_fp16/) instead of fp32")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"],
                        help="the converter's --dtype (default: keep the files' dtype)")
    parser.add_argument("--without-connectors", action="store_true",
                        help="leave out the connector keys (the released files seem to lack them)")
    parser.add_argument("--steps", type=int, default=2, help="DDIM steps per mode (default: 2)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES),
                        help="what to generate, in this order (default: all)")
    parser.add_argument("--small", action="store_true",
                        help="the tiny parity fixture model instead of the full one (CI, seconds)")
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES,
                        help="parity fixture folder, for --small (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep what was written")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--write-checkpoints", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def write_checkpoints(args: argparse.Namespace, src: Path, layout_path: Path) -> None:
    """Step 1 (in its own process): write the missing files; describe them in layout.json."""
    if args.small:
        files = files_from_fixture(args.fixtures)
    else:
        with gzip.open(args.manifest, "rt") as handle:
            files = files_from_manifest(json.load(handle), args.without_connectors)
    written, seconds = ensure_checkpoints(src, files, args.fp16, _log)
    layout_path.write_text(json.dumps({
        "checkpoint_gb": {n: round(file_bytes(e, args.fp16) / 1e9, 3) for n, e in files.items()},
        "tensors": sum(len(e) for e in files.values()),
        "written": [p.name for p in written],
        "write_s": None if seconds is None else round(seconds, 1),
    }))


def _log(line: str) -> None:
    print(f"[dry-run {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        print(RESULT_TAG + json.dumps(worker(args.worker, args.modes, args.steps, args.image_size)))
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="codi-dry-run-"))
    src = workdir / ("checkpoints_fp16" if args.fp16 else "checkpoints")  # as on the Hub
    dst, layout_path = workdir / "converted", workdir / "layout.json"
    workdir.mkdir(parents=True, exist_ok=True)
    if args.write_checkpoints:
        write_checkpoints(args, src, layout_path)
        return 0
    # Every step runs in a child process: a child's ru_maxrss starts from its parent's peak, so
    # this process must stay small for the children's peaks to be their own.
    script = [sys.executable, str(Path(__file__).resolve())]
    summary: dict = {
        "scale": "small (parity fixture model)" if args.small else "full",
        "source_dtype": "fp16" if args.fp16 else "fp32",
        "convert_dtype": args.dtype or "keep",
        "machine": {"nproc": os.cpu_count(), "ram_gb": round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
    }
    layout: dict = {"written": []}
    try:
        flags = [f"--{k.replace('_', '-')}" for k in ("small", "fp16", "without_connectors")
                 if getattr(args, k)]
        summary["write"] = run_measured(
            [*script, "--write-checkpoints", "--workdir", str(workdir), "--manifest",
             str(args.manifest), "--fixtures", str(args.fixtures), *flags],
            workdir / "write.log",
        )
        if summary["write"]["exit_code"] != 0:
            summary["write"]["error"] = (workdir / "write.log").read_text()[-3000:]
            return _report(summary, 1)
        layout = json.loads(layout_path.read_text())
        summary.update({k: layout[k] for k in ("checkpoint_gb", "tensors")})
        summary["write"]["seconds_writing"] = layout["write_s"]
        shutil.rmtree(dst, ignore_errors=True)
        convert_cmd = [sys.executable, "-m", "codi.convert", str(src), str(dst),
                       "--vocab", str(args.vocab)]
        if args.dtype:
            convert_cmd += ["--dtype", args.dtype]
        if args.small:
            convert_cmd += ["--config", str(args.fixtures / "index.json")]
        _log("converting: " + " ".join(convert_cmd[1:]))
        summary["convert"] = run_measured(convert_cmd, workdir / "convert.log")
        summary["converted_gb"] = round(
            sum(p.stat().st_size for p in dst.rglob("*.safetensors")) / 1e9, 3
        ) if dst.exists() else 0
        if summary["convert"]["exit_code"] != 0:
            summary["convert"]["error"] = (workdir / "convert.log").read_text()[-3000:]
            return _report(summary, 1)
        # One process per mode, so each peak is what a user of that mode alone needs; the small
        # model runs all modes in one process to stay fast.
        groups = [args.modes] if args.small else [[mode] for mode in args.modes]
        summary["generate"] = {}
        for modes in groups:
            _log(f"generating {', '.join(modes)}")
            cmd = [*script, "--worker", str(dst), "--steps", str(args.steps),
                   "--image-size", str(args.image_size), "--modes", *modes]
            log_path = workdir / f"generate_{'_'.join(modes)}.log"
            measured = run_measured(cmd, log_path)
            summary["generate"]["+".join(modes)] = {**measured, **result_of(log_path)}
        failed = any(g["exit_code"] != 0 or "error" in g for g in summary["generate"].values())
        return _report(summary, 1 if failed else 0)
    finally:
        if not args.keep:
            shutil.rmtree(dst, ignore_errors=True)
            for name in layout["written"]:
                (src / name).unlink(missing_ok=True)
            if args.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)


def _report(summary: dict, code: int) -> int:
    summary["ok"] = code == 0
    summary["dry_run_process_peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(summary, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(main())
