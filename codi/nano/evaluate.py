"""Grade a CoDi model on the CoDi-Nano world with the model-free probes of codi.nano.probes.

    python -m codi.nano.evaluate --model DIR [--prompts N] [--seeds 0 1] [--steps S]
        [--sampler NAME] [--out FILE]
    python -m codi.nano.evaluate --oracle      # the world's own renders: the probes' ceiling

Over a fixed set of single-object scenes (seeded by EVAL_SEED) it measures attribute accuracy of
text→image, text→audio, text→video, image→text and audio→image (one single-output request
each); the audio-video alignment of joint generation from text (one request for all four
outputs, with connectors on and off, same seed and noise); and the seconds the connectors-on
request takes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from codi.errors import CoDiUserError
from codi.nano import world
from codi.nano.probes import audio_onsets, probe_audio, probe_caption, probe_image, probe_video
from codi.nano.world import FPS, IMAGE_SIZE, NUM_FRAMES, ObjectAttributes, Scene
from codi.pipeline.request import SAMPLER_NAMES

EVAL_SEED = 6_000_006
ALL_OUTPUTS = ("image", "video", "audio", "text")
#: Where a video can show an event: a turning point needs a frame on either side of it.
EVENT_WINDOW_S = (0.5 / FPS, (NUM_FRAMES - 1.5) / FPS)
#: The issue's targets, as fractions and seconds.
TARGETS = {"text_to_image": 0.9, "text_to_audio": 0.9, "text_to_video": 0.8, "image_to_text": 0.8}
TARGET_SECONDS = 10.0


@dataclass(frozen=True)
class Task:
    source: str
    output: str
    attributes: tuple[str, ...]


TASKS = {
    "text_to_image": Task("text", "image", ("colour", "shape", "position")),
    "text_to_audio": Task("text", "audio", ("colour", "shape")),
    "text_to_video": Task("text", "video", ("colour", "shape", "position", "motion")),
    "image_to_text": Task("image", "text", ("colour", "shape", "position")),
    "audio_to_image": Task("audio", "image", ("colour", "shape")),
}


class Generator(Protocol):
    """Anything that turns a scene's `source` rendering into `outputs` (media per modality)."""

    def generate(
        self, scene: Scene, source: str, outputs: Sequence[str], seed: int, connectors: bool = True
    ) -> dict[str, Any]: ...


def render(scene: Scene, modality: str) -> Any:
    """The world's own rendering of a scene in one modality."""
    renderers: dict[str, Callable[[Scene], Any]] = {
        "text": lambda s: s.caption, "image": world.render_image,
        "video": world.render_video, "audio": world.render_audio,
    }
    return renderers[modality](scene)


class WorldOracle:
    """Answers every request with the world's renders of the scene itself."""

    def generate(
        self, scene: Scene, source: str, outputs: Sequence[str], seed: int, connectors: bool = True
    ) -> dict[str, Any]:
        return {m: render(scene, m) for m in outputs}


class PipelineGenerator:
    """Runs a CoDiPipeline at the world's geometry, one request per call."""

    def __init__(self, pipeline: Any, steps: int | None = None, sampler: str | None = None) -> None:
        self.pipeline = pipeline
        self.steps = steps
        self.sampler = sampler

    def generate(
        self, scene: Scene, source: str, outputs: Sequence[str], seed: int, connectors: bool = True
    ) -> dict[str, Any]:
        from codi.pipeline.request import ConditionInput, GenerationRequest

        overrides: dict[str, Any] = {"image_size": IMAGE_SIZE, "num_frames": NUM_FRAMES,
                                     "fps": FPS, "seed": seed, "connectors": connectors}
        if self.steps is not None:
            overrides["steps"] = self.steps
        if self.sampler is not None:
            overrides["sampler"] = self.sampler
        request = GenerationRequest([ConditionInput(source, render(scene, source))], list(outputs),
                                    self.pipeline.default_settings(**overrides))
        result = self.pipeline(request)
        media = {"image": [np.asarray(im.convert("RGB")) for im in result.images],
                 "video": result.videos, "audio": result.audios, "text": result.texts}
        return {m: media[m][0] for m in outputs}


def measure(modality: str, media: Any) -> ObjectAttributes | None:
    """The main object the probes find in one output (largest, loudest or first), or None."""
    if modality == "image":
        blobs = probe_image(media)
        return max(blobs, key=lambda b: b.area).attributes if blobs else None
    if modality == "video":
        tracks = probe_video(media)
        return max(tracks, key=lambda t: t.area).attributes if tracks else None
    if modality == "audio":
        objects = probe_audio(media).objects
        return objects[0] if objects else None
    objects = probe_caption(media)
    return objects[0] if objects else None


def score(task: Task, scene: Scene, media: Any) -> tuple[dict[str, bool], bool]:
    """Per-attribute correctness of one output against its single-object scene, and whether the
    probe read anything at all."""
    expected = scene.objects[0].attributes
    found = measure(task.output, media)
    return {a: found is not None and getattr(found, a) == getattr(expected, a)
            for a in task.attributes}, found is not None


def alignment_counts(video: np.ndarray, audio: np.ndarray) -> dict[str, int]:
    """Audio onsets and video events (reversals) inside the window a video can show, and how many
    of each lie within one frame of the other kind."""
    low, high = EVENT_WINDOW_S
    events = [t for track in probe_video(video) for t in track.event_times]
    onsets = [t for t in audio_onsets(audio) if low < t < high]
    tolerance = 1.0 / FPS
    return {
        "onsets": len(onsets),
        "matched_onsets": sum(any(abs(o - e) <= tolerance for e in events) for o in onsets),
        "events": len(events),
        "matched_events": sum(any(abs(o - e) <= tolerance for o in onsets) for e in events),
    }


def _alignment_summary(counts: list[dict[str, int]]) -> dict[str, Any]:
    total = {k: sum(c[k] for c in counts) for k in ("onsets", "matched_onsets", "events",
                                                     "matched_events")}
    return {
        "onset_precision": total["matched_onsets"] / total["onsets"] if total["onsets"] else 0.0,
        "event_recall": total["matched_events"] / total["events"] if total["events"] else 0.0,
        **total,
    }


def prompt_scenes(count: int, seed: int = EVAL_SEED) -> list[Scene]:
    """The fixed evaluation prompts: single-object scenes."""
    rng = np.random.default_rng(seed)
    return [world.sample_scene(rng, max_objects=1) for _ in range(count)]


def prompt_seed(seed: int, index: int) -> int:
    """The generation seed of prompt `index` under base `seed`: distinct per prompt, so prompts
    do not all start from the same noise (which made every sound put its accent at one place,
    and every sampled caption draw the same words), and the same on every run."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def evaluate(
    generator: Generator,
    scenes: Sequence[Scene],
    seeds: Sequence[int],
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Every task, the joint alignment and the timing over scenes × seeds: a JSON-able report."""
    marks: dict[str, list[dict[str, bool]]] = {name: [] for name in TASKS}
    read: dict[str, list[bool]] = {name: [] for name in TASKS}
    joint: dict[bool, list[tuple[np.ndarray, np.ndarray]]] = {True: [], False: []}
    seconds = []
    for index, scene in enumerate(scenes):
        log(f"[{index + 1}/{len(scenes)}] {scene.caption}")
        for base_seed in seeds:
            seed = prompt_seed(base_seed, index)
            for name, task in TASKS.items():
                media = generator.generate(scene, task.source, [task.output], seed)[task.output]
                correct, was_read = score(task, scene, media)
                marks[name].append(correct)
                read[name].append(was_read)
            for connectors in (True, False):
                started = time.perf_counter()
                out = generator.generate(scene, "text", ALL_OUTPUTS, seed, connectors)
                if connectors:
                    seconds.append(time.perf_counter() - started)
                joint[connectors].append((out["video"], out["audio"]))
    tasks = {}
    for name, task in TASKS.items():
        per_attribute = {a: float(np.mean([m[a] for m in marks[name]])) for a in task.attributes}
        tasks[name] = {"accuracy": float(np.mean(list(per_attribute.values()))),
                       "attributes": per_attribute, "samples": len(marks[name]),
                       "read_fraction": float(np.mean(read[name]))}
    on = [alignment_counts(v, a) for v, a in joint[True]]
    pairs = joint[True]
    shuffled = [alignment_counts(pairs[i][0], pairs[(i + 1) % len(pairs)][1])
                for i in range(len(pairs))] if len(pairs) > 1 else []
    return {
        "prompts": len(scenes),
        "seeds": list(seeds),
        "tasks": tasks,
        "joint_video_audio": {
            "connectors_on": _alignment_summary(on),
            "connectors_off": _alignment_summary([alignment_counts(v, a) for v, a in joint[False]]),
            "shuffled_pairs": _alignment_summary(shuffled),
            "tolerance_s": 1.0 / FPS,
            "window_s": list(EVENT_WINDOW_S),
        },
        "seconds_per_request": {"outputs": list(ALL_OUTPUTS), "mean": float(np.mean(seconds)),
                                "max": float(np.max(seconds))},
    }


#: One-sided significance level at which connectors-on alignment counts as "clearly above".
ALIGNMENT_ALPHA = 0.05


def clearly_above(summary: dict[str, Any], baseline: dict[str, Any]) -> bool:
    """Whether `summary`'s onset precision beats `baseline`'s by more than chance: a one-sided
    two-proportion z-test on matched / detected onsets at ALIGNMENT_ALPHA."""
    n1, n2 = summary["onsets"], baseline["onsets"]
    if not n1 or not n2:
        return False
    p1, p2 = summary["matched_onsets"] / n1, baseline["matched_onsets"] / n2
    pooled = (summary["matched_onsets"] + baseline["matched_onsets"]) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return p1 > p2
    return 0.5 * math.erfc((p1 - p2) / spread / math.sqrt(2)) < ALIGNMENT_ALPHA


def targets(report: dict[str, Any]) -> dict[str, bool]:
    """Which of the issue's targets a report meets."""
    met = {name: report["tasks"][name]["accuracy"] >= goal for name, goal in TARGETS.items()}
    joint = report["joint_video_audio"]
    on = joint["connectors_on"]
    met["joint_connectors_above_off"] = all(
        clearly_above(on, joint[baseline]) for baseline in ("connectors_off", "shuffled_pairs"))
    met["seconds_per_request"] = report["seconds_per_request"]["mean"] <= TARGET_SECONDS
    return met


def format_table(report: dict[str, Any]) -> str:
    """A plain-text summary of a report."""
    columns = ("colour", "shape", "position", "motion")
    lines = [f"{'task':<16}{'n':>5}" + "".join(f"{c:>10}" for c in columns) + f"{'mean':>8}"]
    for name, row in report["tasks"].items():
        cells = "".join(f"{row['attributes'][c]:>10.2f}" if c in row["attributes"] else f"{'-':>10}"
                        for c in columns)
        lines.append(f"{name:<16}{row['samples']:>5}{cells}{row['accuracy']:>8.2f}")
    lines.append("joint video+audio: onsets within one frame of a video event")
    for key, summary in report["joint_video_audio"].items():
        if isinstance(summary, dict):
            lines.append(f"  {key:<16} precision {summary['onset_precision']:.2f} "
                         f"({summary['matched_onsets']}/{summary['onsets']}), event recall "
                         f"{summary['event_recall']:.2f} ({summary['matched_events']}/"
                         f"{summary['events']})")
    timing = report["seconds_per_request"]
    lines.append(f"seconds per request (all four outputs): mean {timing['mean']:.2f}, "
                 f"max {timing['max']:.2f}")
    lines.append("targets met: " + ", ".join(f"{k}={'yes' if v else 'no'}"
                                              for k, v in report["targets"].items()))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m codi.nano.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="a converted CoDi model folder")
    source.add_argument("--oracle", action="store_true",
                        help="score the world's own renders instead of a model")
    parser.add_argument("--prompts", type=int, default=20, help="number of scenes (default 20)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="base generation seeds (each prompt derives its own from each)")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (model default)")
    parser.add_argument("--sampler", default=None, choices=SAMPLER_NAMES,
                        help="denoising sampler (model default)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.prompts < 1:
        print("error: --prompts must be at least 1", file=sys.stderr)
        return 2
    try:
        if args.oracle:
            generator: Generator = WorldOracle()
            model = "world oracle"
        else:
            from codi.pipeline.codi_pipeline import CoDiPipeline

            generator = PipelineGenerator(
                CoDiPipeline.from_pretrained(args.model, device=args.device), args.steps,
                args.sampler)
            model = str(args.model)
        report = evaluate(generator, prompt_scenes(args.prompts), args.seeds,
                          log=lambda line: print(line, file=sys.stderr))
    except CoDiUserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = {"model": model, "device": args.device, "steps": args.steps,
              "sampler": args.sampler,
              "eval_seed": EVAL_SEED, **report}
    report["targets"] = targets(report)
    print(format_table(report))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
