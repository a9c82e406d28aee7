"""Which components a request needs, per stage: the one rule the pipeline and the plan share."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import NamedTuple

from codi.engine.residency import IMAGE_ONLY
from codi.models.joint import UNET_OF_MODALITY

STAGES = ("encode", "denoise", "decode")
#: The component that encodes each input modality.
ENCODER_OF_MODALITY = {"text": "clip_text", "image": "clip_vision", "video": "clip_vision",
                       "audio": "clap"}
#: The components that decode each output modality.
DECODERS_OF_MODALITY = {"image": ("vae_image",), "video": ("vae_image",),
                        "audio": ("vae_audio", "vocoder"), "text": ("optimus_decoder",)}


class NeededComponent(NamedTuple):
    """One component a request opens: its name, its stage and its variant (None: the whole)."""

    name: str
    stage: str
    variant: str | None = None


def needed_components(
    inputs: Sequence[str],
    outputs: Sequence[str],
    available: Collection[str],
    *,
    negative_text: bool = False,
    connectors: bool = True,
    starts: Sequence[str] = (),
) -> list[NeededComponent]:
    """The components of a request, in stage order (encode → denoise → decode).

    A negative prompt needs the text encoder whatever the inputs; connectors join in only for
    several outputs, when `connectors` is on and the model has them; "unet_image" serves image
    outputs without its video layers (IMAGE_ONLY) unless a video is asked for. An output that
    starts from given media (`starts`, a variation) needs its VAE to encode it, before denoising.
    """
    encoders = [ENCODER_OF_MODALITY[m] for m in inputs]
    if negative_text:
        encoders.append("clip_text")
    encoders += [DECODERS_OF_MODALITY[m][0] for m in starts]
    unets = list(dict.fromkeys(UNET_OF_MODALITY[m] for m in outputs))
    needed = [NeededComponent(n, "encode") for n in dict.fromkeys(encoders)]
    needed += [NeededComponent(n, "denoise", IMAGE_ONLY if n == "unet_image"
                               and "video" not in outputs else None) for n in unets]
    if len(outputs) > 1 and connectors:
        needed += [NeededComponent(n + "_connectors", "denoise") for n in unets
                   if n + "_connectors" in available]
    decoders = dict.fromkeys(n for m in outputs for n in DECODERS_OF_MODALITY[m])
    return needed + [NeededComponent(n, "decode") for n in decoders]
