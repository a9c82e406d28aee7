"""The temporal layers' CPU changes, A/B in one process: the previous code against today's.

    python benchmarks/temporal_ab.py [--dtype fp32|bf16] [--rounds 3] [--out FILE]

"before" is the temporal layer as it was until 2026-12-07: norms from `torch.var` and
`torch.mean`, and the feed-forward on [B, C, T, H, W] with 1×1×1 `Conv3d` (its channel norm
over axis 1). "today" is `codi.models.temporal` as it is: two-pass norms
(`codi.models.norms.normalise`) and the feed-forward on the frame sequences [N, T, C] with the
same weights as linear maps. Measured, each way interleaved `--rounds` times (fastest counts):
(1) one full-size video UNet forward ([2, 4, 8, 32, 32], random weights), with the seconds
inside its norms and its feed-forwards (forward hooks); (2) one temporal layer alone
(320 channels, [2, 320, 8, 32, 32]). The outputs of both ways are compared too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

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


def previous_chan_norm(self: temporal.ChanLayerNorm, x: torch.Tensor) -> torch.Tensor:
    """The previous channel norm: axis 1 of [B, C, T, H, W]."""
    return previous_normalise(x, 1) * self.weight.view(-1, 1, 1, 1).to(x.dtype)


def previous_feed_forward(self: temporal.TemporalFeedForward, x: torch.Tensor) -> torch.Tensor:
    """The previous feed-forward: the Conv3d modules on [B, C, T, H, W]."""
    value, gate = self.proj_in(x).float().chunk(2, dim=1)
    h = value * F.gelu(gate)
    kept, shifted = h.chunk(2, dim=1)
    h = torch.cat((kept, temporal._delay_frames(shifted, 1)), dim=1)
    return self.proj_out(self.norm(h).to(self.proj_out.weight.dtype))


def previous_layer(self: temporal.SpatioTemporalAttention, x: torch.Tensor) -> torch.Tensor:
    """The previous temporal layer: back to [B, C, T, H, W] before the feed-forward."""
    if x.ndim == 4:
        return x
    b, c, t, h, w = x.shape
    seq = x.permute(0, 3, 4, 2, 1).reshape(b * h * w, t, c)
    seq = seq + self.attn(seq, self.pos_bias(t))
    x = seq.view(b, h, w, t, c).permute(0, 4, 3, 1, 2)
    x = x + self.ff(x)
    return x + self.frame_shift(x)


PATCHED = ((temporal, "normalise", previous_normalise),
           (temporal.ChanLayerNorm, "forward", previous_chan_norm),
           (temporal.TemporalFeedForward, "forward", previous_feed_forward),
           (temporal.SpatioTemporalAttention, "forward", previous_layer))
TODAY = [(owner, name, getattr(owner, name)) for owner, name, _ in PATCHED]


def use(way: str) -> None:
    """Point the temporal layers at the "before" or the "today" code."""
    for owner, name, function in PATCHED if way == "before" else TODAY:
        setattr(owner, name, function)


def interleaved(ways: dict[str, Callable[[], torch.Tensor]], rounds: int
                ) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Fastest seconds per way over `rounds` interleaved calls, and each way's last output."""
    best = {name: float("inf") for name in ways}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(rounds):
        for name, call in ways.items():
            use(name)
            started = time.perf_counter()
            outputs[name] = call()
            best[name] = min(best[name], time.perf_counter() - started)
    use("today")
    return best, outputs


class ModuleClock:
    """Seconds spent inside the submodules of the given types since the last `reset`, from
    forward hooks (modules of these types do not nest)."""

    def __init__(self, module: torch.nn.Module, kinds: tuple[type, ...]):
        self.seconds = 0.0
        self._started = 0.0
        for sub in module.modules():
            if isinstance(sub, kinds):
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


def unet_report(dtype: torch.dtype, rounds: int) -> dict[str, object]:
    """The whole video UNet call, and the time inside its norms and feed-forwards, both ways."""
    unet = random_component("unet_image", dtype)
    video = torch.randn(2, 4, 8, 32, 32, dtype=dtype)
    context = torch.randn(2, 1, 768, dtype=dtype)
    t = torch.tensor([500, 500])
    unet(video, t, context)  # warm-up
    clocks = {"norms": ModuleClock(unet, (temporal.FrameAxisLayerNorm,)),
              "feed_forwards": ModuleClock(unet, (temporal.TemporalFeedForward,))}
    inside: dict[str, dict[str, float]] = {name: {} for name in clocks}

    def call(way: str) -> torch.Tensor:
        for clock in clocks.values():
            clock.reset()
        output = unet(video, t, context)
        for name, clock in clocks.items():
            inside[name][way] = min(inside[name].get(way, float("inf")), clock.seconds)
        return output

    seconds, outputs = interleaved(
        {"before": lambda: call("before"), "today": lambda: call("today")}, rounds)
    return {"unet_video_forward_s": seconds,
            "unet_inside_frame_axis_norms_s": inside["norms"],
            "unet_inside_feed_forwards_s": inside["feed_forwards"],
            "unet_output_relative_difference": relative_difference(outputs["today"],
                                                                   outputs["before"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="fp32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-unet", action="store_true", help="the temporal layer alone only")
    parser.add_argument("--out", type=Path, default=Path("temporal_ab.json"))
    args = parser.parse_args(argv)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    report: dict[str, object] = {"dtype": args.dtype, "threads": torch.get_num_threads(),
                                 "rounds": args.rounds}
    torch.manual_seed(0)
    with torch.no_grad():
        if not args.skip_unet:
            report.update(unet_report(dtype, args.rounds))
        layer = temporal.SpatioTemporalAttention(320).to(dtype)
        x = torch.randn(2, 320, 8, 32, 32, dtype=dtype)
        layer(x)  # warm-up
        seconds, outputs = interleaved({"before": lambda: layer(x), "today": lambda: layer(x)},
                                       args.rounds * 3)
        report["temporal_layer_320_s"] = seconds
        report["temporal_layer_output_relative_difference"] = relative_difference(
            outputs["today"], outputs["before"])
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
