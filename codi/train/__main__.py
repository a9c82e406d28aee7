"""`python -m codi.train nano` (or `accelerate launch -m codi.train nano`): train CoDi-Nano."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from codi.store.assets import NANO_DIR
    from codi.train.nano import CACHE_SCENES, train_nano

    parser = argparse.ArgumentParser(
        prog="python -m codi.train",
        description="Train CoDi-Nano from scratch on the synthetic shapes world (resumable: run "
                    "the same command again to continue).",
    )
    parser.add_argument("model", choices=["nano"])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/nano"),
                        help="checkpoints, logs and finished stages (default runs/nano)")
    parser.add_argument("--export", type=Path, default=NANO_DIR,
                        help=f"model folder to write at the end (default {NANO_DIR})")
    parser.add_argument("--no-export", action="store_true", help="train only")
    parser.add_argument("--steps", type=int, help="steps of EVERY stage (smoke tests)")
    parser.add_argument("--stage-steps", nargs="+", default=[], metavar="STAGE=N",
                        help="steps of single stages, e.g. optimus=500 diffusion_image=2000")
    parser.add_argument("--cache-scenes", type=int, default=CACHE_SCENES,
                        help="world scenes encoded for the diffusion stages")
    args = parser.parse_args(argv)
    stage_steps = {}
    for item in args.stage_steps:
        name, sep, value = item.partition("=")
        if not sep or not value.isdigit():
            parser.error(f"--stage-steps {item!r}: write STAGE=N, e.g. optimus=500")
        stage_steps[name] = int(value)
    summary = train_nano(args.run_dir, None if args.no_export else args.export, args.steps,
                         args.cache_scenes, stage_steps=stage_steps)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
