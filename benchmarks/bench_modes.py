"""Step time and peak memory per generation mode, full-size CoDi with random weights.

    python benchmarks/bench_modes.py --device cuda --size 256 --steps 5 \
        --out bench.json --markdown bench.md
    python benchmarks/bench_modes.py --device cpu --size 64 --steps 1 --modes t2i,t2a

Each (mode, config) runs in its own subprocess so that peak memory is clean: CUDA
`max_memory_allocated` on a GPU, peak RSS (`ru_maxrss`) on the CPU. Weights are random (speed does
not depend on their values); components are built from `OfficialConfig.full()`.

Configs: "baseline" is the official-style engine (every component resident, `.half()` on a GPU /
fp32 on CPU, classic einsum attention, the identity connectors computed, video layers in the image
UNet); "fp32", "half" (fp16 on a GPU, bf16 on CPU), "int8" and "offload" are ours (SDPA, staged
residency, absent connectors skipped). Ratios are to the baseline of the same run.
"""

from __future__ import annotations

import argparse
import json
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


def random_component(name: str, dtype: torch.dtype, image_only: bool = False) -> torch.nn.Module:
    from codi.convert.registry import spec_by_name
    from codi.official_config import OfficialConfig

    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # no transient float32 copy
    try:
        with skip_init():
            module = spec_by_name(name).build(OfficialConfig.full())
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

    from codi.request import ConditionInput

    values = {
        "text": "a dog barking on a beach",
        "image": Image.new("RGB", (256, 256), (120, 80, 40)),
        "audio": (0.1 * np.sin(np.arange(16000 * 2) / 10)).astype(np.float32),
        "video": np.full((4, 64, 64, 3), 100, dtype=np.uint8),
    }
    return [ConditionInput(k, values[k]) for k in kinds]


def run_one(mode: str, config: str, device: str, size: int, steps: int) -> dict:
    """One measurement in this process."""
    from codi.convert.tokenizers import load_tokenizers
    from codi.embedded import EMBEDDED_DIR
    from codi.models.attention import set_attention_backend
    from codi.pipeline import CoDiPipeline
    from codi.request import GenerationRequest, GenerationSettings
    from codi.runtime import RuntimeOptions

    gpu = device.startswith("cuda")
    half = torch.float16 if gpu else torch.bfloat16
    dtype = {"baseline": half if gpu else torch.float32, "half": half}.get(config, torch.float32)
    if config in ("int8", "offload") and gpu:
        dtype = torch.float16
    runtime = RuntimeOptions(
        device=device,
        attention="classic" if config == "baseline" else "sdpa",
        quantize="int8" if config == "int8" else "none",
        offload="model" if config == "offload" else "none",
    )
    inputs, outputs = MODES[mode]
    index = json.loads((EMBEDDED_DIR / "model_index.json").read_text())
    available = set(ALL_COMPONENTS)
    if config != "baseline":
        available -= {"unet_image_connectors", "unet_audio_connectors", "unet_text_connectors",
                      "optimus_encoder"}
    pipe = CoDiPipeline(
        load_component=lambda n: random_component(n, dtype),
        available=available, tokenizers=load_tokenizers(EMBEDDED_DIR),
        codi_constants=index["codi"], model_info={"model_id": "random full-size"},
        device=device, dtype=dtype, runtime=runtime,
        load_variant=None if config == "baseline" else (
            lambda n, v: random_component(n, dtype, image_only=n == "unet_image")),
    )
    started = time.perf_counter()
    if config == "baseline":  # the official engine: everything resident, einsum attention
        for name in (n for n in ALL_COMPONENTS if n in available):
            if device == "cpu" and not _needed(name, inputs, outputs):
                continue  # all 22.8 GB do not fit a CPU box's RAM; counted analytically instead
            set_attention_backend(pipe.component(name), "classic")
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
        "loaded": pipe.residency.loaded(),
    }


def _needed(name: str, inputs: list[str], outputs: list[str]) -> bool:
    from codi.memory_plan import components_for

    names = {n for n, _, _ in components_for(inputs, outputs, set(ALL_COMPONENTS))}
    return name in names


def markdown(rows: list[dict]) -> str:
    head = ("| mode | config | dtype | step s | ×baseline | peak GB | ×baseline | total s |\n"
            "|---|---|---|---|---|---|---|---|")
    base = {r["mode"]: r for r in rows if r["config"] == "baseline" and "error" not in r}
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['mode']} | {r['config']} | | failed: {r['error'][:60]} | | | | |")
            continue
        b = base.get(r["mode"])
        ratio = (lambda k: f"{r[k] / b[k]:.2f}" if b else "—")
        lines.append(f"| {r['mode']} | {r['config']} | {r['dtype']} | {r['step_s']:.2f} | "
                     f"{ratio('step_s')} | {r['peak_gb']:.2f} | {ratio('peak_gb')} | "
                     f"{r['total_s']:.1f} |")
    return "\n".join(lines)


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
    parser.add_argument("--one", nargs=2, metavar=("MODE", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.device, args.size, args.steps)))
        return 0
    rows = []
    for mode in args.modes.split(","):
        for config in args.configs.split(","):
            cmd = [sys.executable, __file__, "--one", mode, config, "--device", args.device,
                   "--size", str(args.size), "--steps", str(args.steps)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
                row = json.loads(lines[-1]) if lines else {
                    "mode": mode, "config": config, "error": proc.stderr.strip()[-300:]}
            except subprocess.TimeoutExpired:
                row = {"mode": mode, "config": config, "error": f"timeout {args.timeout}s"}
            rows.append(row)
            print(json.dumps(row), flush=True)
            args.out.write_text(json.dumps(rows, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(rows) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
