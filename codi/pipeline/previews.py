"""Live previews: a cheap picture of each image/video output while it is being denoised.

A preview does not run the VAE decoder. A linear map from the latent channels to RGB (plus a
bias) turns the sampler's predicted clean latent at that step into a small picture, one pixel
per latent pixel. The map is fitted by least squares on the model's own image VAE: latents of
the example pictures and random unit latents (what a sampler's latents look like), each paired
with the mean colour of the 8×8 pixels the decoder makes of it. A model exported by this
project (CoDi-Nano) stores its map in `model_index.json` (`PREVIEW_KEY`); for any other folder
the pipeline fits it once, on the first request that asks for previews.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from codi.pipeline.variations import square_pixels
from codi.pipeline.sampling import StepResult
from codi.store.assets import EXAMPLES_DIR

#: The key of a stored map in `model_index.json`.
PREVIEW_KEY = "preview_colours"
#: Outputs that get previews (audio and text have none).
PREVIEW_MODALITIES = ("image", "video")
#: A preview every this many steps by default.
PREVIEW_EVERY = 5
#: The frames of a video preview, evenly spaced, side by side.
PREVIEW_FRAMES = 4
#: The side, in pixels, of the pictures the map is fitted on, and how many random latents join.
FIT_SIZE = 64
FIT_RANDOM_LATENTS = 16
#: A preview is shown at least this many pixels wide per picture (nearest-neighbour upscaling).
PREVIEW_MIN_SIDE = 192


@dataclass
class LatentToRGB:
    """rgb = weight · latent + bias, per latent pixel; rgb in [-1, 1]."""

    weight: torch.Tensor  # [3, C]
    bias: torch.Tensor  # [3]

    def __call__(self, latent: torch.Tensor) -> np.ndarray:
        """[C,h,w] → uint8 [h,w,3]."""
        rgb = torch.einsum("oc,chw->hwo", self.weight, latent.float().cpu()) + self.bias
        return (((rgb + 1) / 2).clamp(0, 1) * 255).to(torch.uint8).numpy()

    def to_json(self) -> dict[str, list]:
        return {"weight": self.weight.tolist(), "bias": self.bias.tolist()}

    @classmethod
    def from_json(cls, stored: dict[str, list]) -> LatentToRGB:
        weight, bias = torch.tensor(stored["weight"]), torch.tensor(stored["bias"])
        if weight.ndim != 2 or weight.shape[0] != 3 or bias.shape != (3,):
            raise ValueError(f"a preview colour map is [3, C] and [3], not "
                             f"{list(weight.shape)} and {list(bias.shape)}")
        return cls(weight.float(), bias.float())


def fit_latent_to_rgb(
    vae: torch.nn.Module, photos: Iterable[Path] | None = None, size: int = FIT_SIZE,
    random_latents: int = FIT_RANDOM_LATENTS,
) -> LatentToRGB:
    """Least-squares fit of the latent→RGB map on `photos` (default: the example pictures)
    and `random_latents` unit-normal latents, all decoded by `vae` at `size` pixels."""
    paths = list(photos) if photos is not None else sorted(EXAMPLES_DIR.glob("*.png"))
    pixels = torch.stack([square_pixels(Image.open(p).convert("RGB"), size) for p in paths]
                         or [torch.zeros(3, size, size)])
    scale = vae.config.scaling_factor
    with torch.no_grad():
        mean = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mean.float().cpu()
        noise = torch.randn((random_latents, *mean.shape[1:]),
                            generator=torch.Generator().manual_seed(0))
        latents = torch.cat([scale * mean, noise])  # [n,C,h,w], the sampler's scale
        decoded = vae.decode((latents / scale).to(vae.device, vae.dtype)).sample
    colours = torch.nn.functional.adaptive_avg_pool2d(decoded.float().cpu().clamp(-1, 1),
                                                      latents.shape[-2:])
    x = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    x = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    y = colours.permute(0, 2, 3, 1).reshape(-1, 3)
    solution = torch.linalg.lstsq(x.double(), y.double()).solution.float()  # [C+1, 3]
    return LatentToRGB(solution[:-1].T.contiguous(), solution[-1].contiguous())


def _upscaled(array: np.ndarray) -> Image.Image:
    image = Image.fromarray(array)
    factor = max(1, -(-PREVIEW_MIN_SIDE // max(image.size)))
    return image.resize((image.width * factor, image.height * factor), Image.NEAREST)


@dataclass
class Preview:
    """The pictures of one step: per output, one per sample (a video: a strip of frames)."""

    step: int
    steps: int
    images: dict[str, list[Image.Image]]


def preview_images(to_rgb: LatentToRGB, modality: str, latent: torch.Tensor) -> list[Image.Image]:
    """One output's batch → its preview pictures: [n,C,h,w] images, [n,C,F,h,w] videos."""
    if modality == "image":
        return [_upscaled(to_rgb(sample)) for sample in latent]
    frames = latent.shape[2]
    chosen = np.linspace(0, frames - 1, min(PREVIEW_FRAMES, frames)).round().astype(int)
    return [_upscaled(np.concatenate([to_rgb(sample[:, f]) for f in chosen], axis=1))
            for sample in latent]


class PreviewMaker:
    """Turns every `every`-th denoising step into a `Preview` for `on_preview`.

    The source is the step's predicted clean latent where the sampler gives one (DDIM, Euler,
    …), else the current latent. The last step makes none: the real decoding follows.
    """

    def __init__(self, to_rgb: LatentToRGB, on_preview: Callable[[Preview], None],
                 steps: int, every: int = PREVIEW_EVERY) -> None:
        self.to_rgb = to_rgb
        self.on_preview = on_preview
        self.steps = steps
        self.every = max(1, every)

    def __call__(self, step: StepResult) -> None:
        done = step.index + 1
        if done % self.every or done >= self.steps:
            return
        images = {}
        for modality in PREVIEW_MODALITIES:
            latent = step.pred_original.get(modality)
            if latent is None:
                latent = step.latents.get(modality)
            if latent is not None:
                images[modality] = preview_images(self.to_rgb, modality, latent)
        if images:
            self.on_preview(Preview(done, self.steps, images))
