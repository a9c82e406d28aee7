"""`python -m codi.convert SRC DST [--dtype D] [--vocab DIR]` and `--check-manifest FILE`."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from codi.convert.core import DTYPES, ConversionReport, convert
from codi.convert.manifest import compare_param_counts, is_param_count_manifest, manifest_sources
from codi.convert.sources import OFFICIAL_REPO, CheckpointError, iter_sources, resolve_sources
from codi.models.official_config import OfficialConfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m codi.convert",
        description="Convert the official CoDi checkpoints into a CoDi Studio model folder.",
    )
    parser.add_argument(
        "src", nargs="?", help=f"folder, file, or Hub repo id (e.g. {OFFICIAL_REPO})"
    )
    parser.add_argument("dst", nargs="?", type=Path, help="output folder")
    parser.add_argument(
        "--dtype", choices=sorted(DTYPES), help="cast floating weights (default: keep)"
    )
    parser.add_argument("--variant", choices=["fp16"], help="Hub only: take checkpoints_fp16/")
    parser.add_argument("--vocab", type=Path, metavar="DIR",
                        help="tokenizer vocab files to save with the model (default: the Hub)")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="a non-default architecture: a parity index.json (its _meta) or the "
                             "_meta object alone (default: the released CoDi)")
    parser.add_argument("--check-manifest", type=Path, metavar="FILE",
                        help="map a key/shape manifest instead of real weights; write nothing")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every key in the report")
    args = parser.parse_args(argv)
    if args.check_manifest is None and (args.src is None or args.dst is None):
        parser.error("SRC and DST are required unless --check-manifest is given")
    return args


def format_report(report: ConversionReport, verbose: bool = False) -> str:
    """A human-readable summary: every key is accounted for, by count or (verbose) by name."""
    lines = [f"official keys consumed: {len(report.consumed)}"]
    for name, count in sorted(report.written.items()):
        lines.append(f"  {name}: {count} tensors")
    if report.unused:
        lines.append(f"official keys knowingly unused: {len(report.unused)}")
        for reason, count in Counter(report.unused.values()).most_common():
            lines.append(f"  {count:5d} × {reason}")
        if verbose:
            lines += [f"    {key}" for key in sorted(report.unused)]
    for name, keys in sorted(report.filled.items()):
        lines.append(
            f"{name}: {len(keys)} keys missing from the files, set to their official init:"
        )
        for key, reason in sorted(keys.items()):
            lines.append(f"    {key} ({reason})")
    for name, reason in sorted(report.absent.items()):
        lines.append(f"absent component {name}: {reason}")
    if report.unknown:
        lines.append(f"UNMAPPED official keys: {len(report.unknown)}")
        lines += [f"    {key}" for key in report.unknown[: None if verbose else 20]]
    if report.errors:
        lines.append(f"ERRORS: {len(report.errors)}")
        lines += [f"    {error}" for error in report.errors[: None if verbose else 40]]
    lines.append("OK" if report.ok else "FAILED")
    return "\n".join(lines)


def official_config(path: Path | None) -> OfficialConfig:
    """The released CoDi, or the architecture described by a parity-format JSON file."""
    if path is None:
        return OfficialConfig.full()
    data = json.loads(path.read_text())
    meta = data.get("_meta", data)
    if "tiny_config" not in meta:
        raise ValueError(f"{path} has no _meta.tiny_config (the official model configuration)")
    return OfficialConfig.from_fixture_meta(meta)


def check_param_counts(path: Path, official: OfficialConfig) -> int:
    """Compare parameter totals; the key/shape manifest beside the file names the unused keys."""
    keys = path.parent / "codi_full_state_dict.json.gz"
    if not keys.exists():
        print(f"error: {keys} (the key/shape manifest) is needed beside {path}", file=sys.stderr)
        return 2
    rows = compare_param_counts(path, keys, official)
    print(f"{'official submodule':<36s} {'official':>14s} {'ours':>14s} {'unused':>11s}")
    for row in rows:
        flag = "OK" if row.ok else "MISMATCH"
        print(f"{row.group:<36s} {row.official:>14,d} {row.ours:>14,d} {row.unused:>11,d} {flag}")
    ok = all(row.ok for row in rows)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        official = official_config(args.config)
        if args.check_manifest is not None and is_param_count_manifest(args.check_manifest):
            return check_param_counts(args.check_manifest, official)
        if args.check_manifest is not None:
            report = convert(manifest_sources(args.check_manifest), official, dst=None)
        else:
            paths = resolve_sources(args.src, args.variant)
            dtype = DTYPES[args.dtype] if args.dtype else None
            report = convert(iter_sources(paths), official, dst=args.dst, dtype=dtype)
    except (CheckpointError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_report(report, args.verbose))
    if not report.ok:
        return 1
    return _save_tokenizers(args.dst, args.vocab) if args.check_manifest is None else 0


def _save_tokenizers(dst: Path, vocab: Path | None) -> int:
    """Add the tokenizers. A bad --vocab is an error; an unreachable Hub only a warning."""
    from codi.errors import CoDiUserError
    from codi.store.tokenizers import save_tokenizers

    try:
        save_tokenizers(dst, vocab)
    except CoDiUserError as error:
        if vocab is not None:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"warning: tokenizers not saved: {error} Add them later with "
              f"`python -m codi.store.tokenizers {dst} [--vocab DIR]`.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
