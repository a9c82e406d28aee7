"""What live previews cost: whole generations with and without them, interleaved, on a CPU.

    python benchmarks/preview_overhead.py --repeats 3 --out benchmarks/previews_DATE.json

CoDi-Nano (its defaults: 25 DDIM steps, 64 px, 8 frames) text → image and text → video, each
timed `--repeats` times with previews every `--every` steps and without, alternating, so drift
hits both alike; the figure is the ratio of the medians. Previews are saved as PNG files as the
studio saves them. Also times the one-off fit of the preview colours on Nano's VAE and on the
full-size SD VAE (random weights: the time does not depend on their values).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_modes import machine  # noqa: E402


def saving_sink(folder: Path):
    """An `on_preview` that writes every picture, as the studio's preview board does."""
    count = [0]

    def save(preview) -> None:
        count[0] += 1
        for modality, images in preview.images.items():
            for index, image in enumerate(images):
                image.save(folder / f"{count[0]:05d}-{modality}-{index}.png")

    return save, count


def time_mode(pipe, output: str, every: int | None, folder: Path) -> tuple[float, int]:
    from codi.pipeline.request import ConditionInput, GenerationRequest, GenerationSettings

    settings = GenerationSettings(seed=1, **{k: v for k, v in pipe.defaults.items()
                                             if k in ("image_size", "num_frames", "fps",
                                                      "steps", "guidance_scale")})
    request = GenerationRequest([ConditionInput("text", "a red circle moving left", 1.0)],
                                [output], settings)
    sink, count = saving_sink(folder) if every else (None, [0])
    started = time.perf_counter()
    pipe(request, on_preview=sink, preview_every=every or 5)
    return time.perf_counter() - started, count[0]


def fit_seconds(vae) -> float:
    from codi.pipeline.previews import fit_latent_to_rgb

    started = time.perf_counter()
    fit_latent_to_rgb(vae)
    return round(time.perf_counter() - started, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--modes", default="image,video")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from bench_modes import random_component

    from codi.pipeline.codi_pipeline import CoDiPipeline
    from codi.store.assets import NANO_DIR

    pipe = CoDiPipeline.from_pretrained(NANO_DIR)
    record = {"machine": machine(), "model": "codi-nano", "every": args.every,
              "dtype": str(pipe.dtype), "fit_s": {"nano": fit_seconds(pipe.component("vae_image"))}}
    import torch

    record["fit_s"]["full_size_sd_vae_fp32"] = fit_seconds(random_component("vae_image",
                                                                            torch.float32))
    pipe.latent_to_rgb()  # fitted once, before the clock, as in a long-running studio
    modes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for output in args.modes.split(","):
            time_mode(pipe, output, None, Path(tmp))  # warm-up
            off, on, shown = [], [], 0
            for _ in range(args.repeats):
                off.append(time_mode(pipe, output, None, Path(tmp))[0])
                seconds, shown = time_mode(pipe, output, args.every, Path(tmp))
                on.append(seconds)
            ratio = statistics.median(on) / statistics.median(off)
            modes[output] = {"without_s": [round(x, 3) for x in off],
                             "with_s": [round(x, 3) for x in on], "previews_per_run": shown,
                             "overhead_pct": round(100 * (ratio - 1), 2)}
            print(f"text→{output}: {statistics.median(off):.2f} s without, "
                  f"{statistics.median(on):.2f} s with {shown} previews: "
                  f"{100 * (ratio - 1):+.1f}%", flush=True)
    record["modes"] = modes
    print(f"fit: {record['fit_s']}")
    if args.out:
        args.out.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
