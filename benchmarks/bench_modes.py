"""Step time and peak memory per generation mode, full-size CoDi with random weights.

    python benchmarks/bench_modes.py --device cuda --size 256 --steps 5 \
        --out bench.json --markdown bench.md
    python benchmarks/bench_modes.py --device cpu --size 64 --steps 2 --modes t2i,t2a

Each (mode, config) runs in its own subprocess so that peak memory is clean: CUDA
`max_memory_allocated` on a GPU, peak RSS (`ru_maxrss`) on the CPU. Weights are random (speed does
not depend on their values); components are built from `OfficialConfig.full()`.

Configs: "baseline" is the official-style engine (every component resident, `.half()` on a GPU /
fp32 on CPU, classic einsum attention, the identity connectors computed, video layers in the image
UNet); "fp32", "half" (fp16 on a GPU, bf16 on CPU), "int8" (the rest fp16 on a GPU, fp32 on CPU)
and "offload" (offload=model at the "half" dtype) are ours (SDPA, staged residency, absent
connectors skipped). Ratios are to the baseline of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODES = {  # name: (inputs, outputs)
    "t2i": (["text"], ["image"]),
    "t2a": (["text"], ["audio"]),
    "t2t": (["text"], ["text"]),
    "t2v": (["text"], ["video"]),
    "i2t": (["image"], ["text"]),
    "a2i": (["audio"], ["image"]),
    "t2va": (["text"], ["video", "audio"]),
    "all2all": (["text", "image", "audio", "video"], ["text", "image", "audio", "video"]),
}
CONFIGS = ("baseline", "fp32", "half", "int8", "offload")
#: Every component the official engine keeps resident.
ALL_COMPONENTS = (
    "clip_text", "clip_vision", "clap", "unet_image", "unet_audio", "unet_text",
    "unet_image_connectors", "unet_audio_connectors", "unet_text_connectors",
    "vae_image", "vae_audio", "vocoder", "optimus_encoder", "optimus_decoder",
)


@contextmanager
def skip_init():
    """Build modules without their (slow) random initialisation; values are set afterwards."""
    names = ("kaiming_uniform_", "uniform_", "normal_", "trunc_normal_", "xavier_uniform_",
             "zeros_", "ones_", "constant_", "orthogonal_")
    saved = {n: getattr(torch.nn.init, n) for n in names}
    for n in names:
        setattr(torch.nn.init, n, lambda tensor, *a, **k: tensor)
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)


def random_component(
    name: str, dtype: torch.dtype, image_only: bool = False, device: str = "cpu"
) -> torch.nn.Module:
    """Full-size component `name` with N(0, 0.02) weights, built on `device` (a GPU fills its
    weights in milliseconds, a CPU in seconds)."""
    from codi.models.official_config import OfficialConfig
    from codi.models.registry import model_component

    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # no transient float32 copy
    try:
        with skip_init(), torch.device(device):
            module = model_component(name).build(OfficialConfig.full())
    finally:
        torch.set_default_dtype(default)
    if image_only:
        for m in module.modules():
            if hasattr(m, "temporal"):
                m.temporal = None
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.02)
    return module.to(dtype).eval()


def sample_inputs(kinds: list[str]):
    import numpy as np
    from PIL import Image

    from codi.pipeline.request import ConditionInput

    values = {
        "text": "a dog barking on a beach",
        "image": Image.new("RGB", (256, 256), (120, 80, 40)),
        "audio": (0.1 * np.sin(np.arange(16000 * 2) / 10)).astype(np.float32),
        "video": np.full((4, 64, 64, 3), 100, dtype=np.uint8),
    }
    return [ConditionInput(k, values[k]) for k in kinds]


def run_one(mode: str, config: str, device: str, size: int, steps: int) -> dict:
    """One measurement in this process."""
    from codi.engine.runtime import RuntimeOptions
    from codi.pipeline.request import GenerationRequest, GenerationSettings

    gpu = device.startswith("cuda")
    half = torch.float16 if gpu else torch.bfloat16
    dtype = {"baseline": half if gpu else torch.float32, "half": half, "offload": half,
             "int8": torch.float16 if gpu else torch.float32}.get(config, torch.float32)
    runtime = RuntimeOptions(
        device=device,
        attention="classic" if config == "baseline" else "sdpa",
        quantize="int8" if config == "int8" else "none",
        offload="model" if config == "offload" else "none",
    )
    inputs, outputs = MODES[mode]
    started = time.perf_counter()
    pipe = random_pipeline(config == "baseline", device, dtype, runtime)
    if config == "baseline":
        open_baseline(pipe, inputs, outputs)
    settings = GenerationSettings(steps=steps, image_size=size, num_frames=4, seed=1)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    ticks: list[float] = []
    result = pipe(GenerationRequest(sample_inputs(inputs), outputs, settings),
                  on_step=lambda i, n: ticks.append(time.perf_counter()))
    timings = result.metadata["timings_s"]
    # the first step also opens the UNets; later steps are the steady state
    step_s = (ticks[-1] - ticks[0]) / (steps - 1) if steps > 1 else timings["denoise"]
    peak = (torch.cuda.max_memory_allocated() if gpu
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {
        "mode": mode, "config": config, "device": device, "dtype": str(dtype)[6:],
        "size": size, "steps": steps, "step_s": step_s,
        "encode_s": timings["encode"], "decode_s": timings["decode"],
        "total_s": time.perf_counter() - started, "peak_gb": peak / 1e9,
        "peak_kind": "cuda_max_allocated" if gpu else "rss",
        "end_gb": (torch.cuda.memory_allocated() if gpu else _rss_now()) / 1e9,
        "loaded": pipe.residency.loaded(),
    }


def random_pipeline(
    baseline: bool, device: str, dtype: torch.dtype, runtime, build_device: str = "cpu"
):
    """A CoDiPipeline over full-size random components (`random_component`) with the tiny
    model's tokenizers and constants. The baseline lists every component the official engine
    holds (connectors and Optimus encoder included) and opens the UNets with their video layers;
    ours lists only what the released weights need and opens the image-only UNet for images."""
    from codi.pipeline.codi_pipeline import CoDiPipeline
    from codi.store.tiny_random import TINY_RANDOM_DIR
    from codi.store.tokenizers import load_tokenizers

    index = json.loads((TINY_RANDOM_DIR / "model_index.json").read_text())
    available = set(ALL_COMPONENTS)
    if not baseline:
        available -= {"unet_image_connectors", "unet_audio_connectors", "unet_text_connectors",
                      "optimus_encoder"}
    return CoDiPipeline(
        load_component=lambda n: random_component(n, dtype, device=build_device),
        available=available, tokenizers=load_tokenizers(TINY_RANDOM_DIR),
        codi_constants=index["codi"], model_info={"model_id": "random full-size"},
        device=device, dtype=dtype, runtime=runtime,
        load_variant=None if baseline else (
            lambda n, v: random_component(n, dtype, image_only=n == "unet_image",
                                          device=build_device)),
    )


def open_baseline(pipe, inputs: list[str], outputs: list[str]) -> None:
    """The official engine: every component resident with einsum attention (on a CPU only those
    the mode needs: all 22.8 GB do not fit a CPU box's RAM; the rest are counted analytically)."""
    from codi.models.attention import set_attention_backend

    for name in (n for n in ALL_COMPONENTS if n in pipe.available):
        if pipe.device.type == "cpu" and not _needed(name, inputs, outputs):
            continue
        set_attention_backend(pipe.component(name), "classic")


def _rss_now() -> int:
    """Resident set size of this process now (Linux), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _needed(name: str, inputs: list[str], outputs: list[str]) -> bool:
    from codi.pipeline.components import needed_components

    names = {c.name for c in needed_components(inputs, outputs, set(ALL_COMPONENTS))}
    return name in names


def planned_gb(mode: str, config: str, device: str) -> float:
    """Weights (GB) the run will hold at its peak, from `codi plan`'s arithmetic (meta device)."""
    from codi.engine.memory_plan import plan_request

    gpu = device.startswith("cuda")
    half = "fp16" if gpu else "bf16"
    precision = {"half": half, "offload": half, "int8": "int8"}.get(
        config, "fp16" if gpu and config == "baseline" else "fp32")
    plan = plan_request(*MODES[mode], precision)
    peak = plan.peak_bytes("model" if config == "offload" else "none")
    if config == "baseline":  # the video layers stay in, and the connectors are computed
        image_only = [c for c in plan.components if c.variant is not None]
        if image_only:
            full = plan_request(["text"], ["video"], precision)
            peak += sum(c.nbytes for c in full.components if c.name == "unet_image")
            peak -= sum(c.nbytes for c in image_only)
        if len(MODES[mode][1]) > 1:
            from codi.engine.memory_plan import meta_full_size

            size = 2 if precision in ("fp16", "bf16") else 4
            peak += sum(p.numel() * size for c in plan.components if c.stage == "denoise"
                        for p in meta_full_size(c.name + "_connectors").parameters())
    if config == "int8" and not gpu:  # measured on CPU: a peak RSS at or above fp32's
        peak = plan_request(*MODES[mode], "fp32").total_bytes
    return peak / 1e9


def available_gb() -> float:
    """MemAvailable of this machine (Linux), in GB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / 1e9
    return float("inf")


def machine() -> dict:
    """What the run ran on."""
    info = {"nproc": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine()}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [x.split(":", 1)[1].strip() for x in cpuinfo.read_text().splitlines()
                 if x.startswith("model name")]
        info["cpu"] = names[0] if names else info["cpu"]
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total = meminfo.read_text().split("\n")[0].split()[1]
        info["ram_gb"] = int(total) * 1024 / 1e9
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table, with ratios to the same mode's baseline."""
    head = ("| mode | config | dtype | step s | ×baseline | peak GB | ×baseline | after GB | "
            "total s |\n|---|---|---|---|---|---|---|---|---|")
    base = {r["mode"]: r for r in rows
            if r["config"] == "baseline" and "error" not in r and "skipped" not in r}
    lines = [head]
    for r in rows:
        if "error" in r or "skipped" in r:
            why = r.get("skipped") or f"failed: {r['error'][:60]}"
            lines.append(f"| {r['mode']} | {r['config']} | | {why} | | | | | |")
            continue
        b = base.get(r["mode"])
        after = f"{r['end_gb']:.2f}" if "end_gb" in r else ""
        lines.append(f"| {r['mode']} | {r['config']} | {r['dtype']} | {r['step_s']:.2f} | "
                     f"{_ratio(r, b, 'step_s')} | {r['peak_gb']:.2f} | {_ratio(r, b, 'peak_gb')} | "
                     f"{after} | "
                     f"{r['total_s']:.1f} |")
    return "\n".join(lines)


def _ratio(row: dict, base: dict | None, key: str) -> str:
    """row[key] / base[key] to two decimals, or a dash without a baseline row."""
    return f"{row[key] / base[key]:.2f}" if base else "—"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--out", type=Path, default=Path("bench_modes.json"))
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per run")
    parser.add_argument("--stop-after", type=float, default=float("inf"), metavar="S",
                        help="start no new run after S seconds (the rest are marked not run)")
    parser.add_argument("--margin-gb", type=float, default=2.0,
                        help="skip a run whose planned weights exceed free RAM minus this (CPU)")
    parser.add_argument("--one", nargs=2, metavar=("MODE", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        oom = Path("/proc/self/oom_score_adj")
        if oom.exists():  # on a shared box, running out of RAM must end this run, not another
            oom.write_text("1000")
        print(json.dumps(run_one(*args.one, args.device, args.size, args.steps)))
        return 0
    rows: list[dict] = []
    report = {"command": " ".join(sys.argv), "machine": machine(), "rows": rows}
    began = time.perf_counter()
    for mode in args.modes.split(","):
        for config in args.configs.split(","):
            need = planned_gb(mode, config, args.device)
            free = available_gb()
            skipped = None
            if time.perf_counter() - began > args.stop_after:
                skipped = "not run (out of time)"
            elif not args.device.startswith("cuda") and need + args.margin_gb > free:
                skipped = f"needs {need:.1f} GB weights, {free:.1f} GB RAM free"
            if skipped:
                row = {"mode": mode, "config": config, "planned_gb": need, "skipped": skipped}
                rows.append(row)
                print(json.dumps(row), flush=True)
                args.out.write_text(json.dumps(report, indent=1))
                continue
            load_before = os.getloadavg()
            cmd = [sys.executable, __file__, "--one", mode, config, "--device", args.device,
                   "--size", str(args.size), "--steps", str(args.steps)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
                row = json.loads(lines[-1]) if lines else {
                    "mode": mode, "config": config, "error": proc.stderr.strip()[-300:]}
            except subprocess.TimeoutExpired:
                row = {"mode": mode, "config": config, "error": f"timeout {args.timeout}s"}
            row.update(planned_gb=need, load_before=load_before, load_after=os.getloadavg())
            rows.append(row)
            print(json.dumps(row), flush=True)
            args.out.write_text(json.dumps(report, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(rows) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
