"""Start CoDi Studio: `python app.py [--model DIR] [--host H] [--port P] [--share]`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="CoDi Studio")
    parser.add_argument("--model", type=Path, default=os.environ.get("CODI_MODEL_DIR"),
                        help="converted model folder (env CODI_MODEL_DIR)")
    parser.add_argument("--host", default=os.environ.get("CODI_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CODI_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="public Gradio share link")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from ui.app import build_app

    build_app(args.model).queue().launch(
        server_name=args.host, server_port=args.port, share=args.share
    )


if __name__ == "__main__":
    main()
