"""Stage 1, bridge alignment: CoDi's prompt encoders trained contrastively into one shared space.

As the paper describes: CLIP's text and vision towers are trained together (symmetric InfoNCE,
learnable temperature) on captioned images — and on captioned videos, so that motion words matter
to the text tower; then the text tower is the frozen anchor: the vision tower's temporal layers
are fine-tuned to it on captioned videos, and CLAP is aligned to it on captioned sounds.

Every input goes through the exact preprocessing the pipeline uses at inference
(`codi.pipeline.conditioning`, `codi.pipeline.preprocess.clip_pixels`, the CLAP front end of
`codi.models.clap_features`).
That preprocessing is the slow part, so each stage draws a pool of world samples once, keeps it
preprocessed (CLIP pixels as the uint8 they are before normalising; CLAP log-mels) and trains on
batches drawn from the pool.

A sample and a caption match when they agree on the attributes the sample carries: an image shows
each object's colour, shape and position (not its motion), a sound its colour and shape, a video
everything. Every matching pair in a batch is a positive (multi-positive InfoNCE), and retrieval
accuracy counts a hit when the retrieved item matches in those attributes. In the first stage a
training-only linear head, shared by the three views, also reads each object's attributes (those
the view shows) from the text, image and video tokens: contrastive loss alone left position and
motion out of every token (docs/nano.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from codi.models.clap_features import clap_log_mel
from codi.models.clip import tokenize
from codi.models.official_config import OfficialConfig
from codi.models.registry import model_component
from codi.nano import world
from codi.pipeline.conditioning import (
    ConditionEncoder,
    RandomSources,
    image_to_condition_tensor,
    video_to_condition_tensor,
)
from codi.pipeline.preprocess import CLIP_MEAN, CLIP_STD, clip_pixels
from codi.store.assets import VOCAB_DIR
from codi.store.tokenizers import load_clip_tokenizer
from codi.train.attributes import (
    ATTRIBUTE_VALUES,
    ATTRIBUTES,
    attribute_head,
    attribute_labels,
    attribute_loss,
    visible_labels,
)
from codi.train.loop import TrainSpec, is_done, run_stage, stage_seconds

IMAGE_STAGE, VIDEO_STAGE, AUDIO_STAGE = "align_image", "align_video", "align_audio"
#: Pools are drawn from the world with this seed (and the view), the evaluation batch with its own.
DATA_SEED = 6
EVAL_SEED = 60_006
EVAL_SIZE = 64
_CHUNK = 64  # world samples drawn and preprocessed at a time
#: `align_image` batches hold one captioned video per this many captioned images (a video costs
#: about as much as 8 images; the images carry most of the signal, the videos the motion words).
VIDEO_SHARE = 8
#: Initial logit scale 5 (temperature 0.2; CLIP starts at 1/0.07) and CLIP's cap, 100. Trained from
#: scratch, a sharper start pushes both towers to constant outputs before they learn anything.
_LOGIT_SCALE_INIT, _LOGIT_SCALE_MAX = math.log(5.0), math.log(100.0)


@dataclass(frozen=True)
class StagePlan:
    """One alignment stage: steps, batch size, learning rate and pool size (distinct samples)."""

    steps: int
    batch_size: int
    lr: float
    pool: int


DEFAULT_PLANS: dict[str, StagePlan] = {
    IMAGE_STAGE: StagePlan(steps=2000, batch_size=64, lr=2e-3, pool=1024),
    VIDEO_STAGE: StagePlan(steps=150, batch_size=32, lr=1e-3, pool=1024),
    AUDIO_STAGE: StagePlan(steps=300, batch_size=32, lr=1e-3, pool=1024),
}


class LogitScale(nn.Module):
    """The learnable temperature: logits are `exp(value) · cosine`, capped at 100 as in CLIP."""

    def __init__(self) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(_LOGIT_SCALE_INIT))

    def forward(self) -> torch.Tensor:
        return self.value.clamp(max=_LOGIT_SCALE_MAX).exp()


def contrastive_loss(
    a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE of unit rows `a[i]`, `b[i]` (`[n, D]`); equal labels are positives."""
    logits = scale * a @ b.T
    positive = (labels[:, None] == labels[None, :]).float()
    target = positive / positive.sum(dim=1, keepdim=True)
    a_to_b = -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()
    b_to_a = -(target * logits.T.log_softmax(dim=1)).sum(dim=1).mean()
    return (a_to_b + b_to_a) / 2


def retrieval_accuracy(
    a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor
) -> tuple[float, float]:
    """Top-1 accuracy a→b and b→a by cosine; a hit retrieves an item with the query's label."""
    sim = F.normalize(a.flatten(1), dim=-1) @ F.normalize(b.flatten(1), dim=-1).T
    a_to_b = (labels[sim.argmax(dim=1)] == labels).float().mean()
    b_to_a = (labels[sim.argmax(dim=0)] == labels).float().mean()
    return float(a_to_b), float(b_to_a)


#: The attributes each view shows: its match key below, and what the attribute head may read.
VISIBLE = {"image": ("colour", "shape", "position"), "audio": ("colour", "shape"),
           "video": ("colour", "shape", "position", "motion"),
           "text": ("colour", "shape", "position", "motion")}
#: Weight of each view's attribute cross-entropy in the image stage (all 0: contrastive loss only).
#: At 0.25 the caption tokens lose motion (the image loss pulls captions that differ only in motion
#: together); text 3 keeps it, but text→video followed motion no better (docs/nano.md).
ATTRIBUTE_WEIGHTS = {"text": 0.25, "image": 0.25, "video": 0.25}
ATTRIBUTE_HEAD = "align_attribute_head"


def _visible_key(view: str, scene: world.Scene) -> tuple:
    return tuple(sorted(tuple(getattr(o, name) for name in VISIBLE[view]) for o in scene.objects))


def image_key(scene: world.Scene) -> tuple:
    """What an image shows of a scene: each object's colour, shape and position."""
    return _visible_key("image", scene)


def audio_key(scene: world.Scene) -> tuple:
    """What a sound carries of a scene: each object's colour (pitch) and shape (timbre)."""
    return _visible_key("audio", scene)


def video_key(scene: world.Scene) -> tuple:
    """What a video shows of a scene: everything the caption says."""
    return _visible_key("video", scene)


KEYS: dict[str, Callable[[world.Scene], tuple]] = {
    "image": image_key, "audio": audio_key, "video": video_key,
}


def _labels(keys: Sequence[tuple], classes: dict[tuple, int]) -> torch.Tensor:
    return torch.tensor([classes.setdefault(key, len(classes)) for key in keys])


def _pipeline_rng() -> RandomSources:
    """The pipeline's default (non-official) preprocessing: centre crops, no flips."""
    return RandomSources(torch.Generator().manual_seed(0), np.random.RandomState(0), False)


def image_conditions(images: np.ndarray) -> torch.Tensor:
    """World images uint8 `[n,64,64,3]` → condition tensors `[n,3,512,512]`, as the pipeline."""
    rng = _pipeline_rng()
    return torch.stack([image_to_condition_tensor(Image.fromarray(im), rng) for im in images])


def video_conditions(videos: np.ndarray) -> torch.Tensor:
    """World videos uint8 `[n,8,64,64,3]` → condition tensors `[n,3,8,256,256]`, as pipeline."""
    return torch.stack([video_to_condition_tensor(video) for video in videos])


def _clip_stats(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32, device=device).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float32, device=device).view(3, 1, 1)
    return mean, std


def pixels_to_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """CLIP pixels (`clip_pixels` output) → the uint8 values they were normalised from."""
    mean, std = _clip_stats(pixels.device)
    return ((pixels * std + mean) * 255).round().to(torch.uint8)


def uint8_to_pixels(values: torch.Tensor) -> torch.Tensor:
    """uint8 CLIP pixels → exactly what `clip_pixels` gives (same float32 operations)."""
    mean, std = _clip_stats(values.device)
    return (values.float() / 255 - mean) / std


def preprocess(view: str, batch: world.WorldBatch) -> torch.Tensor:
    """A world batch's inputs of one view, preprocessed as the pipeline does and stored compactly.

    image → uint8 CLIP pixels `[n,3,224,224]`; video → `[n,8,3,224,224]`; audio → CLAP log-mel
    `[n,1,1001,64]` (16 kHz → 48 kHz, repeat-padded to the 10 s window).
    """
    if view == "image":
        return pixels_to_uint8(clip_pixels(image_conditions(batch.images)))
    if view == "video":
        return pixels_to_uint8(clip_pixels(video_conditions(batch.videos)))
    if view == "audio":
        return clap_log_mel(torch.from_numpy(batch.audios), crop="center")
    raise ValueError(f"unknown view {view!r}")


@dataclass
class Pool:
    """Preprocessed world samples of one view with their captions' token ids and match labels."""

    ids: torch.Tensor
    labels: torch.Tensor
    inputs: torch.Tensor
    attributes: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rng: np.random.Generator, n: int) -> dict[str, torch.Tensor]:
        index = torch.from_numpy(rng.choice(len(self), size=n, replace=False))
        return {"ids": self.ids[index], "labels": self.labels[index], "inputs": self.inputs[index],
                "attributes": self.attributes[index], "index": index}


def build_pool(view: str, size: int, tokenizer, seed: int = DATA_SEED) -> Pool:
    """`size` world samples of one view (drawn with `seed`), preprocessed once."""
    ids, keys, inputs, attributes = [], [], [], []
    for chunk, start in enumerate(range(0, size, _CHUNK)):
        rng = np.random.default_rng([seed, list(KEYS).index(view), chunk])
        batch = world.sample_batch(rng, min(_CHUNK, size - start))
        ids.append(tokenize(tokenizer, batch.captions))
        keys.extend(KEYS[view](scene) for scene in batch.scenes)
        inputs.append(preprocess(view, batch))
        attributes.append(attribute_labels(list(batch.captions)))
    return Pool(torch.cat(ids), _labels(keys, {}), torch.cat(inputs), torch.cat(attributes))


@torch.no_grad()
def text_tokens(clip_text: nn.Module, ids: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Frozen text embeddings `[n, D]` of token ids, computed once for a pool."""
    device = next(clip_text.parameters()).device
    return torch.cat([clip_text.encode(part.to(device))[:, 0].cpu() for part in ids.split(chunk)])


def _bare(module: nn.Module) -> nn.Module:
    """The model inside an accelerate/DDP wrapper (the losses call its `encode` methods)."""
    return getattr(module, "module", module)


def image_stage_loss(modules, batch, step) -> tuple[torch.Tensor, dict[str, float]]:
    """Text + vision on captioned images and captioned videos (one temperature)."""
    n_image = len(batch["image"]["ids"])
    ids = torch.cat([batch["image"]["ids"], batch["video"]["ids"]])
    text = _bare(modules["clip_text"]).encode(ids)[:, 0]
    vision = _bare(modules["clip_vision"])
    image = vision.encode(uint8_to_pixels(batch["image"]["inputs"]))[:, 0]
    video = vision.encode(uint8_to_pixels(batch["video"]["inputs"]))[:, 0]
    scale = modules["logit_scale"]()
    image_loss = contrastive_loss(image, text[:n_image], batch["image"]["labels"], scale)
    video_loss = contrastive_loss(video, text[n_image:], batch["video"]["labels"], scale)
    logs = {"image_loss": float(image_loss.detach()), "video_loss": float(video_loss.detach()),
            "logit_scale": float(scale.detach())}
    loss = image_loss + video_loss
    if ATTRIBUTE_HEAD in modules:
        attributes = tokens_attribute_loss(
            modules[ATTRIBUTE_HEAD],
            {"text": text, "image": image, "video": video},
            {"text": torch.cat([batch["image"]["attributes"], batch["video"]["attributes"]]),
             "image": batch["image"]["attributes"], "video": batch["video"]["attributes"]})
        logs["attributes"] = float(attributes.detach())
        loss = loss + attributes
    return loss, logs


def tokens_attribute_loss(
    head: nn.Module, tokens: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]
) -> torch.Tensor:
    """One shared linear head reads each view's unit tokens (scaled to unit-variance
    components) for the attributes that view shows; the mean of the views' losses, each times
    its `ATTRIBUTE_WEIGHTS`."""
    losses = [ATTRIBUTE_WEIGHTS[view] * attribute_loss(
        head(tokens[view] * tokens[view].shape[-1] ** 0.5),
        visible_labels(labels[view], VISIBLE[view])) for view in tokens]
    return torch.stack(losses).mean()


def video_stage_loss(modules, batch, step) -> tuple[torch.Tensor, dict[str, float]]:
    """Videos against frozen caption embeddings (only the temporal layers and temperature train)."""
    video = _bare(modules["clip_vision"]).encode(uint8_to_pixels(batch["inputs"]))[:, 0]
    scale = modules["logit_scale"]()
    loss = contrastive_loss(video, batch["text"], batch["labels"], scale)
    return loss, {"logit_scale": float(scale.detach())}


def audio_stage_loss(modules, batch, step) -> tuple[torch.Tensor, dict[str, float]]:
    """CLAP log-mels against frozen caption embeddings."""
    audio = _bare(modules["clap"]).embed_log_mel(batch["inputs"])[:, 0]
    scale = modules["logit_scale"]()
    loss = contrastive_loss(audio, batch["text"], batch["labels"], scale)
    return loss, {"logit_scale": float(scale.detach())}


class Pools:
    """Each view's pool, built on first use (seeded, so every process and resume sees the same)."""

    def __init__(self, sizes: dict[str, int], tokenizer) -> None:
        self.sizes = sizes
        self.tokenizer = tokenizer
        self.built: dict[str, Pool] = {}
        self.seconds: dict[str, float] = {}

    def __getitem__(self, view: str) -> Pool:
        if view not in self.built:
            began = time.time()
            self.built[view] = build_pool(view, self.sizes[view], self.tokenizer)
            self.seconds[view] = round(time.time() - began, 1)
        return self.built[view]

    def drop(self, view: str) -> None:
        self.built.pop(view, None)


def _take(pool: Pool, rng: np.random.Generator, n: int) -> dict[str, torch.Tensor]:
    batch = pool.take(rng, n)
    del batch["index"]
    return batch


def _against_text(pools: Pools, view: str, clip_text: nn.Module):
    """A batch maker over a view's pool that pairs each sample with its frozen caption token."""
    text: list[torch.Tensor] = []

    def make_batch(rng: np.random.Generator, n: int) -> dict[str, torch.Tensor]:
        if not text:
            text.append(text_tokens(clip_text, pools[view].ids))
        batch = pools[view].take(rng, n)
        batch["text"] = text[0][batch.pop("index")]
        del batch["ids"]
        return batch

    return make_batch


def _spec(name: str, plan: StagePlan) -> TrainSpec:
    return TrainSpec(name=name, steps=plan.steps, batch_size=plan.batch_size, lr=plan.lr,
                     seed=DATA_SEED, warmup=min(10, plan.steps // 10),
                     checkpoint_every=min(100, max(1, plan.steps // 4)))


Encoders = dict[str, nn.Module]


def align_image(
    encoders: Encoders, pools: Pools, plan: StagePlan, run_dir: Path, accelerator=None
) -> Encoders:
    """(a) CLIP text + vision (temporal layers included) on captioned images and videos."""

    def make_batch(rng: np.random.Generator, n: int) -> dict:
        videos = max(1, n // VIDEO_SHARE)
        return {"image": _take(pools["image"], rng, n), "video": _take(pools["video"], rng, videos)}

    modules = {"clip_text": encoders["clip_text"], "clip_vision": encoders["clip_vision"],
               "logit_scale": LogitScale()}
    # A finished stage needs no head.
    if any(ATTRIBUTE_WEIGHTS.values()) and not is_done(run_dir, IMAGE_STAGE):
        modules[ATTRIBUTE_HEAD] = attribute_head(encoders["clip_text"].config.projection_dim)
    trained = run_stage(_spec(IMAGE_STAGE, plan), modules, image_stage_loss, make_batch, run_dir,
                        accelerator)
    pools.drop("image")
    return {**encoders, "clip_text": trained["clip_text"], "clip_vision": trained["clip_vision"]}


def align_video(
    encoders: Encoders, pools: Pools, plan: StagePlan, run_dir: Path, accelerator=None
) -> Encoders:
    """(c) The vision tower's temporal layers against the frozen text tower, on captioned videos."""
    text, vision = encoders["clip_text"].requires_grad_(False), encoders["clip_vision"]
    for name, param in vision.named_parameters():
        param.requires_grad_(".temporal_self_attn." in name)
    modules = {"clip_vision": vision, "logit_scale": LogitScale()}
    try:
        vision = run_stage(_spec(VIDEO_STAGE, plan), modules, video_stage_loss,
                           _against_text(pools, "video", text), run_dir,
                           accelerator)["clip_vision"]
    finally:
        text.requires_grad_(True)
        vision.requires_grad_(True)
    pools.drop("video")
    return {**encoders, "clip_vision": vision}


def align_audio(
    encoders: Encoders, pools: Pools, plan: StagePlan, run_dir: Path, accelerator=None
) -> Encoders:
    """(b) CLAP against the frozen text tower, on captioned sounds."""
    text = encoders["clip_text"].requires_grad_(False)
    modules = {"clap": encoders["clap"], "logit_scale": LogitScale()}
    try:
        clap = run_stage(_spec(AUDIO_STAGE, plan), modules, audio_stage_loss,
                         _against_text(pools, "audio", text), run_dir, accelerator)["clap"]
    finally:
        text.requires_grad_(True)
    pools.drop("audio")
    return {**encoders, "clap": clap}


def train_alignment(
    official: OfficialConfig,
    run_dir: Path,
    steps: int | dict[str, int] | None = None,
    accelerator=None,
    plans: dict[str, StagePlan] | None = None,
    eval_size: int = EVAL_SIZE,
) -> Encoders:
    """Train (or load, when finished) the three alignment stages; return the aligned encoders.

    steps: None for each plan's steps, an int for every stage, or {stage name: steps}.
    plans: per-stage plans (default `DEFAULT_PLANS`). Finished stages are loaded, interrupted ones
    resume from their checkpoint. Writes `run_dir/align_eval.json`: retrieval accuracy on a
    held-out batch of `eval_size`, `caption_token_readout` of the text tower, and the seconds
    spent on pools and on each stage.
    """
    plans = dict(plans or DEFAULT_PLANS)
    if steps is not None:
        plans = {name: replace(plan, steps=steps if isinstance(steps, int) else
                               steps.get(name, plan.steps)) for name, plan in plans.items()}
    run_dir = Path(run_dir)
    torch.manual_seed(DATA_SEED)
    tokenizer = load_clip_tokenizer(VOCAB_DIR)
    encoders = {name: model_component(name).build(official)
                for name in ("clip_text", "clip_vision", "clap")}
    pools = Pools({"image": plans[IMAGE_STAGE].pool, "video": plans[VIDEO_STAGE].pool,
                   "audio": plans[AUDIO_STAGE].pool}, tokenizer)
    for name, stage in ((IMAGE_STAGE, align_image), (VIDEO_STAGE, align_video),
                        (AUDIO_STAGE, align_audio)):
        encoders = stage(encoders, pools, plans[name], run_dir, accelerator)
    encoders = {name: module.eval() for name, module in encoders.items()}
    if accelerator is None or accelerator.is_main_process:
        report = {"retrieval": evaluate(encoders, tokenizer, eval_size),
                  "caption_attributes": caption_token_readout(encoders["clip_text"], tokenizer),
                  "pool_seconds": pools.seconds,
                  "stage_seconds": {name: stage_seconds(run_dir, name) for name in plans}}
        (run_dir / "align_eval.json").write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2))
    return encoders


@torch.no_grad()
def encode_world(
    encoders: dict[str, nn.Module], tokenizer, batch: world.WorldBatch
) -> dict[str, torch.Tensor]:
    """A world batch → `[n,1,D]` tokens per modality through the pipeline's `ConditionEncoder`."""
    device = next(encoders["clip_text"].parameters()).device
    encoder = ConditionEncoder(encoders.__getitem__, tokenizer, device, torch.float32)
    return {
        "text": encoder.text(list(batch.captions)),
        "image": encoder.pixels(image_conditions(batch.images)),
        "video": encoder.pixels(video_conditions(batch.videos)),
        "audio": encoder.audio(torch.from_numpy(batch.audios), _pipeline_rng()),
    }


def evaluate(
    encoders: dict[str, nn.Module], tokenizer, n: int = EVAL_SIZE, seed: int = EVAL_SEED
) -> dict[str, float]:
    """Top-1 retrieval accuracy text↔image/video/audio on a held-out world batch of `n`."""
    batch = world.sample_batch(np.random.default_rng(seed), n)
    tokens = encode_world(encoders, tokenizer, batch)
    result = {}
    for view in ("image", "video", "audio"):
        labels = _labels([KEYS[view](scene) for scene in batch.scenes], {})
        to_text, from_text = retrieval_accuracy(tokens[view], tokens["text"], labels)
        result[f"{view}_to_text"], result[f"text_to_{view}"] = to_text, from_text
    return result


def one_object_captions() -> tuple[list[str], list[world.ObjectAttributes]]:
    """Every one-object caption of the world (each colour, shape, position and motion: 72)."""
    objects = [world.ObjectAttributes(*values)
               for values in itertools.product(*ATTRIBUTE_VALUES)]
    return [world.caption_for((o,)) for o in objects], objects


def nearest_centroid_accuracy(tokens: torch.Tensor, labels: Sequence[str]) -> float:
    """Leave-one-out nearest-centroid (by dot product) accuracy of `labels` from `[n, D]` tokens:
    how plainly the tokens separate the label's values (a probe with nothing to fit)."""
    labels = np.asarray(labels)
    values = sorted(set(labels.tolist()))
    members = torch.from_numpy(labels[:, None] == np.asarray(values)[None]).to(tokens.dtype)
    sums, counts = members.T @ tokens, members.sum(dim=0)
    hits = 0
    for row in range(len(labels)):
        own = members[row]
        centroids = (sums - own[:, None] * tokens[row]) / (counts - own).clamp(min=1)[:, None]
        hits += values[int((centroids @ tokens[row]).argmax())] == labels[row]
    return hits / len(labels)


@torch.no_grad()
def caption_token_readout(clip_text: nn.Module, tokenizer) -> dict[str, float]:
    """How plainly the caption tokens tell each attribute apart: `nearest_centroid_accuracy` of
    colour, shape, position and motion over the tokens of `one_object_captions`."""
    captions, objects = one_object_captions()
    device = next(clip_text.parameters()).device
    encoder = ConditionEncoder({"clip_text": clip_text}.__getitem__, tokenizer, device,
                               torch.float32)
    tokens = encoder.text(captions)[:, 0].cpu()
    return {name: nearest_centroid_accuracy(tokens, [getattr(o, name) for o in objects])
            for name in ATTRIBUTES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m codi.train.align",
        description="Stage 1 bridge alignment of CoDi-Nano's prompt encoders (CLIP, CLAP).",
    )
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, help="steps of every stage (default: the plans')")
    args = parser.parse_args(argv)
    from codi.nano.config import nano_official

    began = time.time()
    train_alignment(nano_official(), args.run_dir, steps=args.steps)
    print(f"alignment: {time.time() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
