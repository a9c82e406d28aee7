"""The temporal layers' norms, A/B in one process: the previous way against today's.

    python benchmarks/temporal_ab.py [--dtype fp32|bf16] [--rounds 3] [--out FILE]

"before" computes the UNet's temporal norms (frame axis and channels) with `torch.var` and
`torch.mean`, as the code did until 2026-12-07; "today" with `codi.models.norms.normalise` (two
passes, the same maths). (1) One full-size video UNet forward ([2, 4, 8, 32, 32], random
weights), with the seconds spent inside its norms (forward hooks), and (2) one feed-forward block
alone ([2, 320, 8, 32, 32]), each way interleaved `--rounds` times (fastest counts); the outputs
of both ways are compared too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_modes import random_component  # noqa: E402

from codi.models import temporal  # noqa: E402
from codi.models.norms import normalise, official_eps  # noqa: E402


def previous_normalise(x: torch.Tensor, dim: int, eps: float | None = None) -> torch.Tensor:
    """The previous norm: `torch.var` and `torch.mean`, the same maths as `normalise`."""
    var = torch.var(x, dim=dim, unbiased=False, keepdim=True)
    mean = torch.mean(x, dim=dim, keepdim=True)
    return (x - mean) * var.clamp(min=official_eps(x) if eps is None else eps).rsqrt()


def use(way: str) -> None:
    """Point the temporal layers at the "before" or the "today" norm."""
    temporal.normalise = previous_normalise if way == "before" else normalise


def interleaved(ways: dict[str, Callable[[], torch.Tensor]], patch: Callable[[str], None],
                rounds: int) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Fastest seconds per way over `rounds` interleaved calls, and each way's last output."""
    best = {name: float("inf") for name in ways}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(rounds):
        for name, call in ways.items():
            patch(name)
            started = time.perf_counter()
            outputs[name] = call()
            best[name] = min(best[name], time.perf_counter() - started)
    return best, outputs


class NormClock:
    """Seconds spent inside the temporal norms (`FrameAxisLayerNorm`, `ChanLayerNorm`) of a
    module since the last `reset`, from forward hooks."""

    def __init__(self, module: torch.nn.Module):
        self.seconds = 0.0
        self._started = 0.0
        for sub in module.modules():
            if isinstance(sub, (temporal.FrameAxisLayerNorm, temporal.ChanLayerNorm)):
                sub.register_forward_pre_hook(self._start)
                sub.register_forward_hook(self._stop)

    def _start(self, module, args) -> None:
        self._started = time.perf_counter()

    def _stop(self, module, args, output) -> None:
        self.seconds += time.perf_counter() - self._started

    def reset(self) -> None:
        self.seconds = 0.0


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return float((a - b).norm() / b.norm())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="fp32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-unet", action="store_true", help="the feed-forward block only")
    parser.add_argument("--out", type=Path, default=Path("temporal_ab.json"))
    args = parser.parse_args(argv)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    report: dict[str, object] = {"dtype": args.dtype, "threads": torch.get_num_threads(),
                                 "rounds": args.rounds}
    torch.manual_seed(0)

    with torch.no_grad():
        if not args.skip_unet:
            unet = random_component("unet_image", dtype)
            video = torch.randn(2, 4, 8, 32, 32, dtype=dtype)
            context = torch.randn(2, 1, 768, dtype=dtype)
            t = torch.tensor([500, 500])
            unet(video, t, context)  # warm-up
            clock = NormClock(unet)
            norm_s = {"before": float("inf"), "today": float("inf")}

            def call() -> torch.Tensor:
                clock.reset()
                output = unet(video, t, context)
                way = "before" if temporal.normalise is previous_normalise else "today"
                norm_s[way] = min(norm_s[way], clock.seconds)
                return output

            seconds, outputs = interleaved({"before": call, "today": call}, use, args.rounds)
            use("today")
            report["unet_video_forward_s"] = seconds
            report["unet_temporal_norms_s"] = norm_s
            report["unet_output_relative_difference"] = relative_difference(
                outputs["today"], outputs["before"])
            del unet
        block = temporal.TemporalFeedForward(320).to(dtype)
        x = torch.randn(2, 320, 8, 32, 32, dtype=dtype)
        block(x)  # warm-up
        seconds, outputs = interleaved({"before": lambda: block(x), "today": lambda: block(x)},
                                       use, args.rounds * 3)
        use("today")
        report["feed_forward_320_s"] = seconds
        report["feed_forward_output_relative_difference"] = relative_difference(
            outputs["today"], outputs["before"])
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
