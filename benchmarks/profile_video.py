"""Where a full-size video UNet call spends its CPU time: the temporal layers against the rest.

    python benchmarks/profile_video.py [--dtype bf16|fp32] [--frames 8] [--size 256] [--repeats 3]

Builds the full-size image UNet (with its video layers) with random weights and times, on the same
latents, (a) one video forward [2 (guidance), 4, F, S/8, S/8] and (b) the same frames as a batch
of 2·F images (4-D: the temporal layers are skipped), interleaved `--repeats` times (fastest
counts); (a) − (b) is the cost of the temporal layers. Then one video forward under
`torch.profiler` gives the operators by self CPU time, and forward hooks give the time per kind of
temporal sub-layer (attention, feed-forward, frame shift).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_modes import random_component  # noqa: E402

from codi.engine.runtime import conv_weights_channels_last  # noqa: E402
from codi.models.temporal import (  # noqa: E402
    FrameShift,
    SpatioTemporalAttention,
    TemporalAttention,
    TemporalFeedForward,
)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def sublayer_seconds(unet: torch.nn.Module, call) -> dict[str, float]:
    """Seconds per temporal sub-layer kind during one `call()`, from forward hooks."""
    spent: dict[str, float] = defaultdict(float)
    starts: dict[int, float] = {}
    kinds = {TemporalAttention: "attention", TemporalFeedForward: "feed-forward",
             FrameShift: "frame shift", SpatioTemporalAttention: "temporal total"}
    handles = []
    for module in unet.modules():
        kind = kinds.get(type(module))
        if kind is None:
            continue
        handles.append(module.register_forward_pre_hook(
            lambda m, a: starts.__setitem__(id(m), time.perf_counter())))
        handles.append(module.register_forward_hook(
            lambda m, a, o, kind=kind: spent.__setitem__(
                kind, spent[kind] + time.perf_counter() - starts[id(m)])))
    call()
    for handle in handles:
        handle.remove()
    return dict(spent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--channels-last", action="store_true",
                        help="2-D convolution weights channels-last (the runtime's option)")
    parser.add_argument("--out", type=Path, default=Path("profile_video.json"))
    args = parser.parse_args(argv)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.manual_seed(0)
    unet = random_component("unet_image", dtype)
    if args.channels_last:
        conv_weights_channels_last(unet)
    side = args.size // 8
    video = torch.randn(2, 4, args.frames, side, side, dtype=dtype)
    images = video.permute(0, 2, 1, 3, 4).reshape(-1, 4, side, side)
    context = torch.randn(2, 1, 768, dtype=dtype)
    t = torch.tensor([500, 500])

    def run_video():
        unet(video, t, context)

    def run_images():
        unet(images, t.repeat_interleave(args.frames),
             context.repeat_interleave(args.frames, dim=0))

    with torch.no_grad():
        run_video()  # warm-up
        video_s, image_s = [], []
        for _ in range(args.repeats):
            video_s.append(timed(run_video))
            image_s.append(timed(run_images))
        parts = sublayer_seconds(unet, run_video)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            run_video()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top)
    report = {"dtype": args.dtype, "channels_last": args.channels_last, "frames": args.frames,
              "size": args.size,
              "threads": torch.get_num_threads(), "video_s": min(video_s),
              "frames_as_images_s": min(image_s),
              "temporal_share": 1 - min(image_s) / min(video_s), "sublayers_s": parts}
    args.out.write_text(json.dumps({**report, "profile": table}, indent=1))
    print(json.dumps(report, indent=1))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
