"""`python -m codi generate | download | models | plan | batch`: CoDi from the command line.

The CLI only turns flags into a `GenerationRequest`; files are decoded by the pipeline's media
layer. A mistake a person can fix (`CoDiUserError`) prints one line, `error: <message>`, and
exits with status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from codi.engine.runtime import add_runtime_arguments, options_from_args, quiet_library_logs
from codi.errors import CoDiUserError, GenerationCancelled
from codi.evaluation.batch import add_batch_arguments, run_batch_command
from codi.pipeline.request import (
    MODALITIES,
    SAMPLER_NAMES,
    ConditionInput,
    GenerationRequest,
    GenerationSettings,
    StartInput,
    TextDecoding,
)

USER_ERROR_STATUS = 2
CANCELLED_STATUS = 130
PLAN_PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int4")
_WEIGHT = re.compile(r"(?P<modality>[a-z]+)(?::(?P<index>\d+))?=(?P<value>.+)")


def build_parser() -> argparse.ArgumentParser:
    """The `python -m codi` parser with its commands."""
    parser = argparse.ArgumentParser(prog="python -m codi", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_generate(commands.add_parser("generate", help="generate outputs from inputs"))
    download = commands.add_parser("download", help="download and convert the full CoDi model")
    download.add_argument("--variant", choices=["fp16"],
                          help="take the fp16 files (half the download)")
    download.add_argument("--dest", type=Path,
                          help="model folder (default: the cache, see `models`)")
    models = commands.add_parser("models", help="show which model `--model auto` uses")
    models.add_argument("--model", default="auto", help="a model folder, 'embedded' or 'auto'")
    plan = commands.add_parser("plan", help="which components a request loads, and their memory")
    plan.add_argument("--inputs", default="text", metavar="LIST",
                      help=f"comma-separated input kinds, from {','.join(MODALITIES)}")
    plan.add_argument("--outputs", default="image", metavar="LIST",
                      help=f"comma-separated output kinds, from {','.join(MODALITIES)}")
    plan.add_argument("--dtype", choices=PLAN_PRECISIONS, default="fp16",
                      help="weight precision (int8/int4: the large Linear layers, the rest fp16)")
    plan.add_argument("--full-size", action="store_true",
                      help="plan for the real CoDi (5.7 B parameters; no weights needed)")
    plan.add_argument("--model", default="auto", help="model folder, 'embedded' or 'auto'")
    plan.add_argument("--negative", action="store_true",
                      help="the request has a negative prompt (it needs the text encoder)")
    plan.add_argument("--no-connectors", action="store_true",
                      help="several outputs generated independently (connectors off)")
    plan.add_argument("--starts", default="", metavar="LIST",
                      help="outputs that start from a file (variations; they need their VAE "
                           "to encode it)")
    add_batch_arguments(commands.add_parser(
        "batch", help="generate an evaluation session's grid (accelerate launch spreads it)"))
    return parser


def _add_generate(p: argparse.ArgumentParser) -> None:
    d = GenerationSettings()
    inputs = p.add_argument_group("inputs (repeat a flag for several inputs of one kind)")
    inputs.add_argument("--text", action="append", default=[], metavar="PROMPT")
    inputs.add_argument("--image", action="append", default=[], metavar="FILE")
    inputs.add_argument("--audio", action="append", default=[], metavar="FILE")
    inputs.add_argument("--video", action="append", default=[], metavar="FILE")
    inputs.add_argument("--weight", action="append", default=[], metavar="KIND[:N]=W",
                        help="input weight: image=0.5 for every image, image:2=0.3 for the "
                             "second image (N counts from 1); default 1")
    inputs.add_argument("--video-soundtrack", action="store_true",
                        help="also condition on each input video's audio track")
    inputs.add_argument("--start", action="append", default=[], metavar="KIND=FILE",
                        help="a variation: start the image, audio or video output from FILE "
                             "instead of pure noise (e.g. image=photo.png)")
    inputs.add_argument("--strength", type=float, default=StartInput.strength, metavar="S",
                        help="how far a --start file may change: 0 keeps it, 1 ignores it "
                             "(default %(default)s)")
    out = p.add_argument_group("outputs and settings")
    out.add_argument("--outputs", default="image", metavar="LIST",
                     help=f"comma-separated, from {','.join(MODALITIES)} (default: image)")
    out.add_argument("--steps", type=int,
                     help=f"denoising steps (default: the model's; official {d.steps})")
    out.add_argument("--sampler", choices=SAMPLER_NAMES,
                     help="denoising sampler (default: the model's; official ddim)")
    out.add_argument("--guidance", type=float,
                     help=f"guidance scale (default: the model's; official {d.guidance_scale})")
    out.add_argument("--negative", metavar="PROMPT", help="negative prompt")
    out.add_argument("--seed", type=int, help="random seed (default: a fresh one, recorded)")
    out.add_argument("--size", type=int, help="image/video side in pixels (default: the "
                     f"model's; official {d.image_size})")
    out.add_argument("--frames", type=int,
                     help=f"video frames (default: the model's; official {d.num_frames})")
    out.add_argument("--fps", type=float,
                     help=f"video frames per second (default: the model's; official {d.fps:g})")
    out.add_argument("--samples", type=int, default=d.num_samples, help="samples per output")
    out.add_argument("--text-mode", choices=["sample", "greedy"],
                     help="how captions are decoded (default: the model's; official "
                          f"{d.text_decoding.mode})")
    out.add_argument("--temperature", type=float,
                     help="caption sampling temperature (default: the model's; "
                          f"official {d.text_decoding.temperature:g})")
    out.add_argument("--max-tokens", type=int,
                     help="caption length limit in tokens (default: the model's; "
                          f"official {d.text_decoding.max_tokens})")
    out.add_argument("--official-preprocessing", action="store_true",
                     help="reproduce the official code's random crops, flips and noise draws")
    out.add_argument("--cross-modal", action=argparse.BooleanOptionalAction,
                     help="connectors attend to the other outputs (the paper's intent; not "
                          "official; default: the model's — on for CoDi-Nano, off otherwise)")
    out.add_argument("--no-connectors", action="store_true",
                     help="generate several outputs independently (connectors off)")
    run = p.add_argument_group("where and how")
    run.add_argument("--out", type=Path, default=Path("outputs"), metavar="DIR")
    run.add_argument("--name", default="codi", help="file name stem of the outputs")
    run.add_argument("--model", default="auto",
                     help="model folder, 'full', 'embedded' or 'auto' (on a CUDA machine "
                          "without the full model, auto fetches it first; CODI_FETCH_FULL=0 "
                          "skips that)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    add_runtime_arguments(p)


def parse_weights(specs: list[str], counts: dict[str, int]) -> dict[tuple[str, int | None], float]:
    """`["image=0.5", "image:2=0.3"]` → {("image", None): 0.5, ("image", 1): 0.3} (0-based)."""
    weights: dict[tuple[str, int | None], float] = {}
    for spec in specs:
        match = _WEIGHT.fullmatch(spec.strip())
        if match is None:
            raise CoDiUserError(f"--weight {spec!r}: write KIND=W or KIND:N=W, e.g. image=0.5.")
        modality, index = match["modality"], match["index"]
        if modality not in MODALITIES:
            raise CoDiUserError(
                f"--weight {spec!r}: {modality!r} is not one of {', '.join(MODALITIES)}."
            )
        try:
            value = float(match["value"])
        except ValueError:
            raise CoDiUserError(f"--weight {spec!r}: {match['value']!r} is not a number.") from None
        if counts.get(modality, 0) == 0:
            raise CoDiUserError(f"--weight {spec!r}: there is no {modality} input.")
        if index is not None and not 1 <= int(index) <= counts[modality]:
            raise CoDiUserError(
                f"--weight {spec!r}: there are {counts[modality]} {modality} inputs "
                "(N counts from 1)."
            )
        weights[(modality, None if index is None else int(index) - 1)] = value
    return weights


def build_request(
    args: argparse.Namespace, model_defaults: dict | None = None
) -> GenerationRequest:
    """The request the flags describe, validated; flags left out take the model's defaults."""
    base = GenerationSettings(**(model_defaults or {}))

    def flag_or(value, default):
        return default if value is None else value

    given = {"text": args.text, "image": args.image, "audio": args.audio, "video": args.video}
    weights = parse_weights(args.weight, {m: len(v) for m, v in given.items()})
    inputs = []
    for modality in MODALITIES:
        for i, value in enumerate(given[modality]):
            weight = weights.get((modality, i), weights.get((modality, None), 1.0))
            inputs.append(ConditionInput(
                modality, value if modality == "text" else Path(value), weight,
                use_soundtrack=modality == "video" and args.video_soundtrack,
            ))
    settings = GenerationSettings(
        steps=flag_or(args.steps, base.steps), sampler=flag_or(args.sampler, base.sampler),
        guidance_scale=flag_or(args.guidance, base.guidance_scale), negative_text=args.negative,
        seed=args.seed, image_size=flag_or(args.size, base.image_size),
        num_frames=flag_or(args.frames, base.num_frames), fps=flag_or(args.fps, base.fps),
        num_samples=args.samples,
        text_decoding=TextDecoding(
            flag_or(args.text_mode, base.text_decoding.mode),
            flag_or(args.temperature, base.text_decoding.temperature),
            flag_or(args.max_tokens, base.text_decoding.max_tokens)),
        official_randomness=args.official_preprocessing,
        cross_modal=flag_or(args.cross_modal, base.cross_modal),
        connectors=not args.no_connectors,
    )
    outputs = [o.strip() for o in args.outputs.split(",") if o.strip()]
    request = GenerationRequest(inputs=inputs, outputs=outputs, settings=settings,
                                starts=parse_starts(args.start, args.strength))
    request.validate()
    return request


def parse_starts(specs: list[str], strength: float) -> list[StartInput]:
    """`["image=a.png"]` → [StartInput("image", Path("a.png"), strength)]."""
    starts = []
    for spec in specs:
        modality, sep, file = spec.partition("=")
        if not sep or not file.strip():
            raise CoDiUserError(f"--start {spec!r}: write KIND=FILE, e.g. image=photo.png.")
        starts.append(StartInput(modality.strip(), Path(file.strip()), strength))
    return starts


def progress_callback(enabled: bool) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """An `on_step` that drives a tqdm bar on stderr (opened at the first step), and its closer."""
    from tqdm.auto import tqdm

    bars: list[tqdm] = []

    def on_step(step: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="step", desc="denoising", disable=not enabled,
                             file=sys.stderr))
        bars[0].update(step - bars[0].n)

    def close() -> None:
        if bars:
            bars[0].close()

    return on_step, close


def run_generate(args: argparse.Namespace) -> int:
    from codi.pipeline.factory import open_pipeline
    from codi.store.full_fetch import fetch_wanted, resolve_or_fetch
    from codi.store.model_store import read_model_index

    options = options_from_args(args)
    device_type = options.torch_device().type
    if fetch_wanted(args.model, device_type):
        build_request(args, None)  # a mistyped argument is told before a long download
    model = resolve_or_fetch(args.model, device_type)
    request = build_request(args, read_model_index(model.folder).get("defaults"))
    if model.note:
        print(f"note: {model.note}", file=sys.stderr)
    pipeline = open_pipeline(model.folder, options)
    on_step, close = progress_callback(not args.quiet)
    try:
        result = pipeline(request, on_step=on_step)
    finally:
        close()
    for path in result.save(args.out, args.name):
        print(path)
    for text in result.texts:
        print(f"text: {text}", file=sys.stderr)
    return 0


def run_download(args: argparse.Namespace) -> int:
    from codi.store.download import download
    from codi.store.model_store import default_model_dir

    folder = download(args.dest or default_model_dir(), variant=args.variant)
    print(folder)
    if args.dest is not None and args.dest.resolve() != default_model_dir().resolve():
        print(f"note: --model auto does not look in {folder}; pass --model {folder} "
              "or set CODI_MODEL_DIR.", file=sys.stderr)
    return 0


def run_models(args: argparse.Namespace) -> int:
    import json

    from codi.store.model_store import default_model_dir, resolve_model
    from codi.store.weights import available_components

    model = resolve_model(args.model)
    index = json.loads((model.folder / "model_index.json").read_text())
    hashes = index.get("weights_sha256", {})
    print(f"model: {model.folder}")
    print(f"kind: {model.kind}")
    if model.note:
        print(f"note: {model.note}")
    print(f"download folder (auto): {default_model_dir()}")
    print("components:")
    for name in available_components(model.folder):
        size = sum(p.stat().st_size for p in (model.folder / name).glob("*.safetensors"))
        print(f"  {name:24s} {size / 2**20:9.1f} MiB  {hashes.get(name, '')[:16]}")
    return 0


def run_plan(args: argparse.Namespace) -> int:
    from codi.engine.memory_plan import format_plan, plan_request

    def kinds(flag: str, value: str) -> list[str]:
        names = [v.strip() for v in value.split(",") if v.strip()]
        bad = [n for n in names if n not in MODALITIES]
        if not names or bad:
            raise CoDiUserError(f"--{flag} {value!r}: list kinds from {', '.join(MODALITIES)}.")
        return names

    inputs, outputs = kinds("inputs", args.inputs), kinds("outputs", args.outputs)
    starts = kinds("starts", args.starts) if args.starts else []
    if args.full_size:
        folder, title = None, "full-size CoDi (OfficialConfig.full(), built on the meta device)"
    else:
        from codi.store.model_store import resolve_model

        folder = resolve_model(args.model).folder
        title = f"model: {folder}"
    quiet_library_logs()
    plan = plan_request(inputs, outputs, args.dtype, folder, negative_text=args.negative,
                        connectors=not args.no_connectors, starts=starts)
    print(format_plan(plan, f"{title}\n{','.join(inputs)} -> {','.join(outputs)}"))
    return 0


def run_batch(args: argparse.Namespace) -> int:
    quiet_library_logs()
    return run_batch_command(args)



COMMANDS = {
    "generate": run_generate, "download": run_download, "models": run_models, "plan": run_plan,
    "batch": run_batch,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CoDiUserError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR_STATUS
    except (GenerationCancelled, KeyboardInterrupt):
        print("cancelled", file=sys.stderr)
        return CANCELLED_STATUS
