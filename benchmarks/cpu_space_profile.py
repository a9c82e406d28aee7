"""The "free CPU Space" profile: one complete generation per mode of the full-size CoDi on a CPU.

    python benchmarks/cpu_space_profile.py --modes t2i,t2a --sampler dpmpp_2m --steps 15
    python benchmarks/cpu_space_profile.py --modes t2i --config baseline --steps 50   # official

The full-size architecture with random weights (speed does not depend on their values), 256 px,
8 video frames. Every component a mode needs is opened before the clock starts (a real model
opens memory-mapped files in seconds; random weights take longer to draw), then one whole
request is timed: encode + every step + decode, as `result.metadata["timings_s"]` reports them.
One subprocess per mode, so each peak RSS (`ru_maxrss`) is that mode's alone. Configs: "ours"
(`dtype auto`: bf16 on a CPU with native bf16, else fp32; SDPA; staged components) and
"baseline" (the official-style engine: fp32, einsum attention, video layers and connectors held).
The memory budget (`--memory-budget-gb`, default 14: a 16 GB machine less the OS and server) is
given to the runtime and checked against the measured peak; a mode whose plan does not fit is
recorded as skipped instead of started.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_modes import MODES, machine, open_baseline, random_pipeline, sample_inputs  # noqa: E402


def planned_gb(mode: str, precision: str) -> float:
    """`python -m codi plan --full-size`'s weight bytes for the mode, in GB."""
    from codi.engine.memory_plan import plan_request

    inputs, outputs = MODES[mode]
    return plan_request(inputs, outputs, precision).total_bytes / 1e9


def open_everything(pipe, inputs: list[str], outputs: list[str], settings) -> None:
    """Open every component of the request's stages now (outside the timed request)."""
    from codi.pipeline.components import needed_components

    for needed in needed_components(inputs, outputs, pipe.available,
                                    connectors=settings.connectors):
        pipe.component(needed.name, needed.variant)


def run_mode(mode: str, args) -> dict:
    """One complete generation of `mode`, in this process."""
    from codi.engine.runtime import RuntimeOptions
    from codi.pipeline.request import GenerationRequest, GenerationSettings

    baseline = args.config == "baseline"
    runtime = RuntimeOptions(device="cpu", dtype="fp32" if baseline else "auto",
                             attention="classic" if baseline else "sdpa",
                             memory_budget_gb=args.memory_budget_gb)
    dtype = runtime.torch_dtype()
    inputs, outputs = MODES[mode]
    settings = GenerationSettings(steps=args.steps, sampler=args.sampler, image_size=args.size,
                                  num_frames=args.frames, seed=1)
    built = time.perf_counter()
    pipe = random_pipeline(baseline, "cpu", dtype, runtime)
    if baseline:
        open_baseline(pipe, inputs, outputs)
    else:
        open_everything(pipe, inputs, outputs, settings)
    opened_s = time.perf_counter() - built
    started = time.perf_counter()
    result = pipe(GenerationRequest(sample_inputs(inputs), outputs, settings))
    total = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return {"mode": mode, "config": args.config, "dtype": str(dtype).removeprefix("torch."),
            "sampler": args.sampler, "steps": args.steps, "size": args.size,
            "timings_s": result.metadata["timings_s"], "total_s": total,
            "step_s": result.metadata["timings_s"]["denoise"] / args.steps,
            "peak_rss_gb": peak, "fits_budget": peak <= args.memory_budget_gb,
            "build_s": opened_s}


def in_subprocess(mode: str, args) -> dict:
    cmd = [sys.executable, __file__, "--one", mode, "--config", args.config, "--sampler",
           args.sampler, "--steps", str(args.steps), "--size", str(args.size), "--frames",
           str(args.frames), "--memory-budget-gb", str(args.memory_budget_gb)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout_s)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    return {"mode": mode, "config": args.config, "error": proc.stderr.strip()[-400:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="t2i,t2a")
    parser.add_argument("--config", choices=("ours", "baseline"), default="ours")
    parser.add_argument("--sampler", default="ddim")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--memory-budget-gb", type=float, default=14.0)
    parser.add_argument("--timeout-s", type=float, default=3600)
    parser.add_argument("--out", type=Path, default=Path("cpu_space_profile.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_mode(args.one, args)))
        return 0
    bf16 = args.config == "ours" and _auto_dtype() == torch.bfloat16
    precision = "bf16" if bf16 else "fp32"
    rows = []
    for mode in args.modes.split(","):
        need = planned_gb(mode, precision)
        if need > args.memory_budget_gb:
            rows.append({"mode": mode, "config": args.config,
                         "skipped": f"plan {need:.1f} GB > budget {args.memory_budget_gb:g} GB"})
        else:
            rows.append({**in_subprocess(mode, args), "planned_weights_gb": need})
        print(json.dumps(rows[-1]), flush=True)
    args.out.write_text(json.dumps({"machine": machine(), "command": " ".join(sys.argv),
                                    "rows": rows}, indent=1))
    return 0 if all("error" not in r for r in rows) else 1


def _auto_dtype() -> torch.dtype:
    from codi.engine.runtime import RuntimeOptions

    return RuntimeOptions(device="cpu").torch_dtype()


if __name__ == "__main__":
    sys.exit(main())
