"""`python -m codi.parity DIR [--vocab VOCAB_DIR] [--only NAME ...]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codi.parity.runner import run_parity, summary


def quiet_library_logs() -> None:
    """No per-component loading bars or info chatter between the fixture lines."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.disable_progress_bar()
        library.set_verbosity_error()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m codi.parity",
        description="Check our networks against numbers produced by the official CoDi code.",
    )
    parser.add_argument("dir", type=Path, help="fixture folder (index.json + *.safetensors)")
    parser.add_argument("--vocab", type=Path, help="tokenizer files (default: DIR/../vocab)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these fixtures")
    args = parser.parse_args(argv)
    quiet_library_logs()
    if not (args.dir / "index.json").is_file():
        print(f"error: {args.dir} has no index.json (not a parity fixture folder)", file=sys.stderr)
        return 2
    results = run_parity(
        args.dir, args.vocab, args.only, on_result=lambda r: print(r.line(), flush=True)
    )
    print(summary(results))
    return 0 if results and not any(r.status == "fail" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
