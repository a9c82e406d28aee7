"""Start CoDi Studio: `python app.py [--model DIR] [--host H] [--port P] [--share] [--auth U:P]
[--data-dir D]`.

Every flag has an environment fallback (CODI_MODEL_DIR, CODI_HOST, CODI_PORT, CODI_SHARE,
CODI_AUTH, CODI_QUEUE_SIZE, CODI_WORKERS, CODI_DATA_DIR, and the runtime's CODI_DEVICE,
CODI_DTYPE, ...), so a Space or a container can configure it without a command line. The page
works offline (no analytics, no Hub calls).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

TRUE = ("1", "true", "yes", "on")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def parse_auth(text: str | None) -> list[tuple[str, str]] | None:
    """"user:pass" or "u1:p1,u2:p2" → [(user, pass), ...]; None when empty."""
    if not text:
        return None
    pairs = []
    for item in text.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise SystemExit(f"--auth / CODI_AUTH: write user:password, got {item.strip()!r}")
        pairs.append((user, password))
    return pairs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from codi.engine.runtime import add_runtime_arguments

    p = argparse.ArgumentParser(description="CoDi Studio: any-to-any generation in the browser")
    p.add_argument("--model", default=_env("CODI_MODEL_DIR", "auto"),
                   help="model folder, 'full', 'embedded' or 'auto' (env CODI_MODEL_DIR; "
                        "default auto: the downloaded full model, on a Space the preloaded one, "
                        "else the embedded CoDi-Nano; on a CUDA machine without the full "
                        "model, it is fetched in the background at first start and the studio "
                        "switches to it; CODI_FETCH_FULL=0 skips that)")
    p.add_argument("--host", default=_env("CODI_HOST") or _env("GRADIO_SERVER_NAME")
                   or ("0.0.0.0" if _env("SPACE_ID") else "127.0.0.1"),
                   help="interface to listen on (env CODI_HOST, then GRADIO_SERVER_NAME; "
                        "0.0.0.0 on a Hugging Face Space; else 127.0.0.1)")
    p.add_argument("--port", type=int,
                   default=int(_env("CODI_PORT") or _env("GRADIO_SERVER_PORT") or "7860"),
                   help="port (env CODI_PORT, then GRADIO_SERVER_PORT; default 7860)")
    p.add_argument("--share", action="store_true",
                   default=(_env("CODI_SHARE", "") or "").lower() in TRUE,
                   help="also open a public gradio.live link (env CODI_SHARE=1)")
    p.add_argument("--auth", default=_env("CODI_AUTH"), metavar="USER:PASS[,USER:PASS]",
                   help="require a login (env CODI_AUTH)")
    p.add_argument("--queue-size", type=int, default=int(_env("CODI_QUEUE_SIZE", "16")),
                   help="most requests waiting at once; more are refused with \"This "
                        "application is currently busy. Please try again.\" (env "
                        "CODI_QUEUE_SIZE)")
    p.add_argument("--workers", type=int, default=int(_env("CODI_WORKERS", "1")),
                   help="generations running at once (env CODI_WORKERS)")
    p.add_argument("--data-dir", default=_env("CODI_DATA_DIR"),
                   help="folder of the evaluation sessions: database and media (env "
                        "CODI_DATA_DIR; default ./codi-data)")
    add_runtime_arguments(p)
    args = p.parse_args(argv)
    if args.workers < 1 or args.queue_size < 1:
        p.error("--workers and --queue-size must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from ui.temp_files import serve_from_process_dir

    serve_from_process_dir()  # before Gradio is imported: its cache goes there too
    from codi.engine.runtime import options_from_args
    from codi.errors import CoDiUserError
    from codi.store.full_fetch import BackgroundFetch, fetch_wanted
    from ui.app import build_app, launch_options
    from ui.studio import Studio
    from ui.zerogpu import zerogpu_runtime

    try:
        options = zerogpu_runtime(options_from_args(args))
        fetch = fetch_wanted(args.model, options.torch_device().type)
        # While the full CoDi is fetched, the embedded model serves ("auto" finds it anyway).
        studio = Studio("embedded" if fetch else args.model, runtime=options)
    except CoDiUserError as error:
        raise SystemExit(f"error: {error}") from None
    if fetch:
        studio.start_fetch(BackgroundFetch())
    app = build_app(studio, data_dir=args.data_dir)
    app.queue(default_concurrency_limit=args.workers, max_size=args.queue_size)
    app.launch(server_name=args.host, server_port=args.port, share=args.share,
               auth=parse_auth(args.auth), **launch_options(args.data_dir))


if __name__ == "__main__":
    main()
