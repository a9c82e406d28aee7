"""bf16 against fp32 on a CPU: how far the outputs move, and the time per request.

    python benchmarks/bf16_cpu.py --out bf16.json               # CoDi-Nano + tiny random model
    python benchmarks/bf16_cpu.py --full-size --modes t2i,t2a   # also full-size random weights

For each model and mode, one request in float32 and one in bf16 as `--dtype auto` runs it on a
CPU with native bf16 (`codi.engine.runtime.component_dtype`: the audio decoders stay float32),
same seed, interleaved `--repeats` times (the fastest run counts). It reports the final latents'
relative error ‖Δ‖/‖x‖, the decoded outputs' mean |Δ| (images and video in grey levels of 255;
waveforms relative to their mean |x|; texts equal or not) and the seconds per request. The
tolerances `dtype auto` relies on are TOLERANCES; the exit status is 1 when one is exceeded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from codi.engine.runtime import cpu_has_native_bf16  # noqa: E402

MODES = {"t2i": ["image"], "t2a": ["audio"], "t2v": ["video"], "t2t": ["text"]}
PROMPT = "a red circle on the left moving right"
#: What bf16 may move, at most: final latents (relative), pixels (grey levels), waves (relative).
TOLERANCES = {"latent_rel": 0.10, "pixels": 3.0, "wave_rel": 0.05}
#: Rows the tolerances do not judge, and why (they are still measured and shown).
NOT_JUDGED = {("tiny", "t2t"): "the tiny random text UNet's GroupNorms see two values per group, "
                               "so any rounding flips them (tests/test_runtime.py)"}


def open_pipe(model: str, dtype: torch.dtype, size: int):
    """A pipeline over a shipped model folder, or the full-size random architecture."""
    from codi.pipeline.codi_pipeline import CoDiPipeline
    from codi.store.assets import NANO_DIR, TINY_RANDOM_DIR

    if model == "full-size":
        return full_size_pipe(dtype)
    return CoDiPipeline.from_pretrained(NANO_DIR if model == "nano" else TINY_RANDOM_DIR,
                                        dtype=dtype)


def full_size_pipe(dtype: torch.dtype):
    """The full-size architecture with the same random weights in either dtype: each component
    is drawn in float32 from a seed of its own name, then cast (audio decoders stay float32)."""
    import zlib

    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_modes import random_component, random_pipeline

    from codi.engine.runtime import RuntimeOptions, component_dtype

    def seeded(name: str, image_only: bool = False) -> torch.nn.Module:
        torch.manual_seed(zlib.crc32(name.encode()))
        module = random_component(name, torch.float32, image_only=image_only)
        return module.to(component_dtype(name, dtype, torch.device("cpu")))

    pipe = random_pipeline(False, "cpu", dtype, RuntimeOptions(device="cpu"))
    pipe.residency._load = seeded
    pipe.residency._load_variant = lambda name, variant: seeded(name, name == "unet_image")
    return pipe


def run(pipe, mode: str, steps: int, size: int) -> tuple[float, dict, object]:
    """(seconds, final latents, result) of one request."""
    from codi.pipeline.request import ConditionInput, GenerationRequest

    finals: dict = {}
    decode = pipe.decode

    def keeping(latents, *args, **kwargs):
        finals.update({k: v.float().cpu() for k, v in latents.items()})
        return decode(latents, *args, **kwargs)

    pipe.decode = keeping
    settings = pipe.default_settings(steps=steps, seed=5, image_size=size, num_frames=4)
    started = time.perf_counter()
    result = pipe(GenerationRequest([ConditionInput("text", PROMPT)], MODES[mode], settings))
    seconds = time.perf_counter() - started
    del pipe.decode
    return seconds, finals, result


def differences(a_latents, b_latents, a, b) -> dict:
    """How far the bf16 result `b` is from the float32 result `a`."""
    out = {"latent_rel": max(float((b_latents[k] - a_latents[k]).norm() / a_latents[k].norm())
                             for k in a_latents)}
    if a.images:
        out["pixels"] = float(np.abs(np.asarray(a.images[0], float)
                                     - np.asarray(b.images[0], float)).mean())
    if a.videos:
        out["pixels"] = float(np.abs(a.videos[0].astype(float) - b.videos[0].astype(float)).mean())
    if a.audios:
        out["wave_rel"] = float(np.abs(a.audios[0] - b.audios[0]).mean()
                                / (np.abs(a.audios[0]).mean() + 1e-12))
    if a.texts:
        out["text_equal"] = a.texts == b.texts
    return out


def measure(model: str, modes: list[str], steps: int, size: int, repeats: int) -> list[dict]:
    pipes = {d: open_pipe(model, d, size) for d in (torch.float32, torch.bfloat16)}
    rows = []
    for mode in modes:
        times: dict = {d: [] for d in pipes}
        outs: dict = {}
        for _ in range(repeats):
            for dtype, pipe in pipes.items():
                seconds, finals, result = run(pipe, mode, steps, size)
                times[dtype].append(seconds)
                outs[dtype] = (finals, result)
        (la, a), (lb, b) = outs[torch.float32], outs[torch.bfloat16]
        row = {"model": model, "mode": mode, "steps": steps, "size": size,
               "fp32_s": min(times[torch.float32]), "bf16_s": min(times[torch.bfloat16]),
               **differences(la, lb, a, b)}
        row["within"] = all(row.get(k, 0.0) <= bound for k, bound in TOLERANCES.items())
        if (model, mode) in NOT_JUDGED:
            row["within"], row["not_judged"] = None, NOT_JUDGED[(model, mode)]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | mode | fp32 s | bf16 s | bf16/fp32 | latent ‖Δ‖/‖x‖ | output Δ | within |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        delta = (f"{r['pixels']:.2f} grey levels" if "pixels" in r else
                 f"{r['wave_rel']:.3f} of mean |x|" if "wave_rel" in r else
                 ("same text" if r.get("text_equal") else "text differs"))
        lines.append(f"| {r['model']} | {r['mode']} | {r['fp32_s']:.2f} | {r['bf16_s']:.2f} | "
                     f"{r['bf16_s'] / r['fp32_s']:.2f} | {r['latent_rel']:.4f} | {delta} | "
                     f"{_verdict(r['within'])} |")
    return "\n".join(lines)


def _verdict(within: bool | None) -> str:
    return "not judged" if within is None else ("yes" if within else "NO")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="nano,tiny",
                        help="from nano, tiny (empty: only --full-size)")
    parser.add_argument("--full-size", action="store_true",
                        help="also the full-size random architecture (256 px, few steps)")
    parser.add_argument("--modes", default="t2i,t2a,t2v,t2t")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--full-steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bf16_cpu.json"))
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    modes = args.modes.split(",")
    rows = []
    for model in filter(None, args.models.split(",")):
        rows += measure(model, modes, args.steps, 64, args.repeats)
    if args.full_size:
        rows += measure("full-size", modes, args.full_steps, 256, 2)  # the 2nd: components open
    report = {"native_bf16": cpu_has_native_bf16(), "threads": torch.get_num_threads(),
              "tolerances": TOLERANCES, "rows": rows}
    args.out.write_text(json.dumps(report, indent=1))
    print(table(rows))
    return 0 if all(r["within"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
