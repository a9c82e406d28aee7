"""GPU acceptance check: every mode, every engine config, finite outputs, and the studio.

    python benchmarks/gpu_check.py --out gpu_check.json            # one GPU, ≤ 8 minutes
    python benchmarks/gpu_check.py --device cpu --small --out x.json  # the CI form (tiny model)

Full size: components are the real CoDi architecture with random weights (`bench_modes`'
helpers), every mode at 256 px / 8 frames for a few steps. One subprocess per config, so CUDA
peaks are clean; inside it each mode starts from an empty device (`torch.cuda.max_memory_allocated`
is reset and every component dropped first). Configs, essential first: "ours" (fp16 + SDPA),
"baseline" (the official-style engine, T→I and T→V+A only), "offload" (offload=model), "int8"
and "nf4" (bitsandbytes, CUDA only), "xformers" (when importable). Rows not started before
`--budget-s` are marked "not run (budget)". Then `python app.py` is started on the tiny model
and one `/generate` goes through gradio_client.

`--small` uses the tiny random model, two modes and the configs that run on a CPU.
Exit status: 1 when a mode crashed or an output is not finite (NaN/Inf in a decoded latent, image,
waveform or the latents text is decoded from), 0 otherwise; skipped rows do not fail the check.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_modes import MODES, machine, open_baseline, random_pipeline, sample_inputs  # noqa: E402

#: Config order is the row order: the essential ones first.
CONFIGS = ("ours", "baseline", "offload", "int8", "nf4", "xformers")
BASELINE_MODES = ("t2i", "t2va")
FULL_MODES = ("t2i", "t2va", "t2a", "t2t", "t2v", "i2t", "a2i", "all2all")
SMALL_MODES = ("t2i", "t2va")
SMALL_CONFIGS = ("ours", "baseline", "offload")
#: Seconds kept back from the budget for the studio round trip.
STUDIO_RESERVE_S = 60.0


def runtime_for(config: str, device: str):
    """The RuntimeOptions a config runs with (fp16 on a GPU; the device default on a CPU)."""
    from codi.engine.runtime import RuntimeOptions

    dtype = "fp16" if device.startswith("cuda") else "auto"
    return RuntimeOptions(
        device=device, dtype=dtype,
        attention={"baseline": "classic", "xformers": "xformers"}.get(config, "sdpa"),
        quantize={"int8": "int8", "nf4": "int4"}.get(config, "none"),
        offload="model" if config == "offload" else "none",
    )


def unavailable(config: str, device: str) -> str | None:
    """Why `config` cannot run here, or None."""
    gpu = device.startswith("cuda")
    if config in ("int8", "nf4") and not gpu:
        return "skipped (bitsandbytes check needs CUDA)"
    if config in ("int8", "nf4") and importlib.util.find_spec("bitsandbytes") is None:
        return "skipped (bitsandbytes not installed)"
    if config == "xformers" and (not gpu or importlib.util.find_spec("xformers") is None):
        return "skipped (xformers not importable on CUDA)"
    return None


def modes_for(config: str, small: bool) -> tuple[str, ...]:
    modes = SMALL_MODES if small else FULL_MODES
    return tuple(m for m in modes if config != "baseline" or m in BASELINE_MODES)


class FiniteProbe:
    """Records whether every latent and decoded tensor of a request is finite, by wrapping the
    decoding functions the pipeline calls (uint8 images would hide a NaN)."""

    NAMES = (
        "decode_image_latents", "decode_audio_latents", "mel_to_waveform", "decode_text_latents"
    )

    def __init__(self) -> None:
        self.bad: list[str] = []

    def check(self, name: str, value) -> None:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            if not bool(torch.isfinite(value).all()):
                self.bad.append(name)

    @contextmanager
    def watching(self):
        from codi.pipeline import decoding

        saved = {n: getattr(decoding, n) for n in self.NAMES}

        def wrap(name, fn):
            def probed(module, *args, **kwargs):
                for value in args:  # the latents (text decoding takes a tokenizer first)
                    self.check(f"{name} input", value)
                out = fn(module, *args, **kwargs)
                self.check(f"{name} output", out)
                return out
            return probed

        for n, fn in saved.items():
            setattr(decoding, n, wrap(n, fn))
        try:
            yield self
        finally:
            for n, fn in saved.items():
                setattr(decoding, n, fn)


def output_finite(result) -> bool:
    """The float outputs (waveforms) hold no NaN/Inf."""
    import numpy as np

    return all(bool(np.isfinite(a).all()) for a in result.audios)


def open_pipe(config: str, device: str, small: bool):
    """The pipeline a config measures: the tiny model (small) or full-size random weights."""
    runtime = runtime_for(config, device)
    if small:
        from codi.pipeline.codi_pipeline import CoDiPipeline
        from codi.store.tiny_random import TINY_RANDOM_DIR

        dev = runtime.torch_device()
        return CoDiPipeline.from_pretrained(
            TINY_RANDOM_DIR, device=str(dev), dtype=runtime.torch_dtype(dev), runtime=runtime)
    dtype = runtime.torch_dtype(torch.device(device))
    build = device if config not in ("int8", "nf4") else "cpu"  # bnb quantizes from the CPU
    return random_pipeline(config == "baseline", device, dtype, runtime, build_device=build)


def memory_now(device: str) -> tuple[float, float]:
    """(peak, now) in GB: CUDA allocated on a GPU, peak/current RSS on a CPU."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 1e9, torch.cuda.memory_allocated() / 1e9
    import resource

    from bench_modes import _rss_now

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, _rss_now() / 1e9


def run_mode(pipe, mode: str, config: str, args) -> dict:
    """One mode on an emptied device; the row's measurements."""
    from codi.pipeline.request import GenerationRequest, GenerationSettings

    inputs, outputs = MODES[mode]
    pipe.residency.clear()
    gpu = args.device.startswith("cuda")
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    if config == "baseline":
        open_baseline(pipe, inputs, outputs)
    settings = GenerationSettings(steps=args.steps, image_size=args.size,
                                  num_frames=args.frames, seed=1)
    ticks: list[float] = []
    started = time.perf_counter()
    probe = FiniteProbe()
    with probe.watching():
        result = pipe(GenerationRequest(sample_inputs(inputs), outputs, settings),
                      on_step=lambda i, n: ticks.append(time.perf_counter()))
    if gpu:
        torch.cuda.synchronize()
    steps = len(ticks) - 1
    step_s = (ticks[-1] - ticks[0]) / steps if steps > 0 else result.metadata["timings_s"][
        "denoise"]
    peak, after = memory_now(args.device)
    return {
        "mode": mode, "config": config, "device": args.device,
        "dtype": str(pipe.dtype).removeprefix("torch."), "step_s": step_s,
        "total_s": time.perf_counter() - started, "peak_gb": peak, "after_gb": after,
        "finite": not probe.bad and output_finite(result), "not_finite": probe.bad,
    }


def run_config(config: str, modes: list[str], args, deadline: float) -> list[dict]:
    """Every mode of one config, in this process; modes past `deadline` are marked not run."""
    rows: list[dict] = []
    try:
        pipe = open_pipe(config, args.device, args.small)
    except Exception as error:  # a config that cannot even open fails all its modes
        return [{"mode": m, "config": config, "error": f"{type(error).__name__}: {error}"}
                for m in modes]
    for mode in modes:
        if time.time() > deadline:
            rows.append({"mode": mode, "config": config, "skipped": "not run (budget)"})
            continue
        try:
            rows.append(run_mode(pipe, mode, config, args))
        except Exception as error:
            rows.append({"mode": mode, "config": config,
                         "error": f"{type(error).__name__}: {str(error)[:300]}"})
    return rows


def config_in_subprocess(config: str, modes: list[str], args, deadline: float) -> list[dict]:
    """`run_config` in a fresh process (clean peaks); a crash or timeout fails its modes."""
    cmd = [sys.executable, __file__, "--one-config", config, "--modes", ",".join(modes),
           "--deadline", str(deadline), *common_flags(args)]
    timeout = max(deadline - time.time(), 0) + args.row_grace_s
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [{"mode": m, "config": config, "error": f"timeout {timeout:.0f}s"} for m in modes]
    lines = [x for x in proc.stdout.splitlines() if x.startswith("[")]
    if lines:
        return json.loads(lines[-1])
    why = proc.stderr.strip()[-300:] or f"exit {proc.returncode}"
    return [{"mode": m, "config": config, "error": why} for m in modes]


def common_flags(args) -> list[str]:
    flags = ["--device", args.device, "--size", str(args.size), "--steps", str(args.steps),
             "--frames", str(args.frames)]
    return flags + (["--small"] if args.small else [])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def studio_round_trip(device: str, timeout_s: float = 120.0) -> dict:
    """Start `python app.py` on the tiny model and send one /generate with gradio_client."""
    from gradio_client import Client

    from codi.store.tiny_random import TINY_RANDOM_DIR

    port = free_port()
    started = time.perf_counter()
    cmd = [sys.executable, str(REPO / "app.py"), "--model", str(TINY_RANDOM_DIR),
           "--device", device, "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    row = {"mode": "studio /generate", "config": f"app.py --device {device}"}
    try:
        client = None
        while client is None:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited {proc.returncode}: {proc.stderr.read()[-300:]}")
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"app.py did not answer in {timeout_s:.0f}s")
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:  # not listening yet
                time.sleep(0.5)
        text, images, audio, video, files, params, seed, status = client.predict(
            text="a red square", outputs=["image"], steps=2, seed=3, randomize_seed=False,
            api_name="/generate")
        image = Path(images[0]["image"]) if images else None
        ok = seed == 3 and image is not None and image.exists()
        row.update(total_s=time.perf_counter() - started, finite=ok,
                   **({} if ok else {"error": f"unexpected reply: {status!r}"}))
    except Exception as error:
        row["error"] = f"{type(error).__name__}: {str(error)[:300]}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return row


def failed(row: dict) -> bool:
    return "error" in row or row.get("finite") is False


def table(rows: list[dict]) -> str:
    """The rows as Markdown; ratios are to the baseline of the same mode."""
    base = {r["mode"]: r for r in rows if r["config"] == "baseline" and "step_s" in r}
    lines = ["| mode | config | dtype | step s | ×baseline | peak GB | after GB | finite |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "step_s" not in r:
            why = r.get("skipped") or (f"failed: {r['error'][:70]}" if "error" in r else "ok")
            if "total_s" in r:
                why += f" ({r['total_s']:.1f} s)"
            lines.append(f"| {r['mode']} | {r['config']} | | {why} | | | | "
                         f"{'' if 'finite' not in r else ('yes' if r['finite'] else 'NO')} |")
            continue
        b = base.get(r["mode"])
        ratio = f"{r['step_s'] / b['step_s']:.2f}" if b else "—"
        lines.append(f"| {r['mode']} | {r['config']} | {r['dtype']} | {r['step_s']:.3f} | "
                     f"{ratio} | {r['peak_gb']:.2f} | {r['after_gb']:.2f} | "
                     f"{'yes' if r['finite'] else 'NO: ' + ', '.join(r['not_finite'])} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true",
                        help="tiny model, two modes, CPU-capable configs (the CI form)")
    parser.add_argument("--size", type=int, help="image size (256; 64 with --small)")
    parser.add_argument("--frames", type=int, help="video frames (8; 2 with --small)")
    parser.add_argument("--steps", type=int, help="denoising steps (3; 2 with --small)")
    parser.add_argument("--modes", help="comma-separated (default: all, or two with --small)")
    parser.add_argument("--configs", help=f"comma-separated, in order (default: {CONFIGS})")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="start no new row after this many seconds (default 480)")
    parser.add_argument("--row-grace-s", type=float, default=180.0,
                        help="how long a config may run past the budget before it is killed")
    parser.add_argument("--no-studio", action="store_true", help="skip the app.py round trip")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--one-config", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    small = args.small
    args.size = args.size or (64 if small else 256)
    args.frames = args.frames or (2 if small else 8)
    args.steps = args.steps or (2 if small else 3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one_config:
        print(json.dumps(run_config(args.one_config, args.modes.split(","), args, args.deadline)))
        return 0
    began = time.time()
    deadline = began + args.budget_s - (0 if args.no_studio else STUDIO_RESERVE_S)
    configs = args.configs.split(",") if args.configs else (
        SMALL_CONFIGS if args.small else CONFIGS)
    chosen = args.modes.split(",") if args.modes else None
    rows: list[dict] = []
    report = {"command": " ".join(sys.argv), "machine": machine(), "budget_s": args.budget_s,
              "size": args.size, "frames": args.frames, "steps": args.steps, "rows": rows}
    for config in configs:
        modes = [m for m in modes_for(config, args.small) if chosen is None or m in chosen]
        why = unavailable(config, args.device)
        if why or time.time() > deadline:
            why = why or "not run (budget)"
            rows.extend({"mode": m, "config": config, "skipped": why} for m in modes)
        elif modes:
            rows.extend(config_in_subprocess(config, modes, args, deadline))
        args.out.write_text(json.dumps(report, indent=1))
    if not args.no_studio:
        rows.append(studio_round_trip(args.device))
    report["elapsed_s"] = time.time() - began
    report["failed"] = sum(failed(r) for r in rows)
    args.out.write_text(json.dumps(report, indent=1))
    print(table(rows))
    print(f"{report['failed']} failed, {report['elapsed_s']:.0f} s; JSON in {args.out}")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
