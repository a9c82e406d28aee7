"""Joint forward over several CoDi UNets, and the official condition mixing.

Interface every CoDi UNet follows (image/video and audio: codi.models.unet_2d; text:
codi.models.unet_text)::

    class <UNet>(ModelMixin, ConfigMixin):
        def forward(self, sample, timestep, context, connectors=None, environment=None) -> Tensor
            # context [B,1,D]. With `connectors` (this modality's connector module) and
            # `environment` [B,1,Cc] (normalised; timed: [B,T,Cc]), each connector-in transformer
            # runs after its main block with `environment` as its context.
        def time_embedding(self, timestep, dtype) -> Tensor
            # [N, temb] for N timesteps: the emb of the blocks and of the environment encoder

    class <Connectors>(ModelMixin, ConfigMixin):
        def raw_environment(self, sample, emb) -> Tensor  # last environment-encoder stage
        def environment(self, sample, emb) -> Tensor      # [B,1,Cc]: mean over non-channel
                                                          # axes, L2-normalised
        def environment_sequence(self, sample, emb) -> Tensor  # [B,T,Cc], timed connectors only

Modality keys are 'image', 'video', 'audio' and 'text'; 'video' is the image UNet on a 5-D latent.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: Which UNet component serves each output modality.
UNET_OF_MODALITY = {
    "image": "unet_image",
    "video": "unet_image",
    "audio": "unet_audio",
    "text": "unet_text",
}


def mix_conditions(conditions: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """Official multi-condition context: sum_i c_i * w_i / sum_j w_j.

    The weights are normalised as a float64 (numpy) array, as the official code does; each
    product and the running sum stay in the conditions' dtype.
    """
    normalised = np.asarray(weights, dtype=np.float64)
    normalised = normalised / normalised.sum()
    mixed = conditions[0] * float(normalised[0])
    for condition, weight in zip(conditions[1:], normalised[1:], strict=True):
        mixed = mixed + condition * float(weight)
    return mixed


#: Outputs with a time axis (axis 2 of their latent), whose environment can be timed.
TIMED_MODALITIES = ("video", "audio")


def _environments(
    unets: dict[str, nn.Module],
    latents: dict[str, torch.Tensor],
    timestep: torch.Tensor | int,
    connectors: dict[str, nn.Module | None],
) -> dict[str, torch.Tensor]:
    """Each modality's own environment, for modalities that have connectors: the official
    pooled vector [B,1,Cc], or [B,T,Cc] for a video or audio whose connectors are timed."""
    envs = {}
    for modality, x in latents.items():
        module = connectors.get(modality)
        if module is not None:
            emb = unets[modality].time_embedding(timestep, x.dtype).expand(x.shape[0], -1)
            timed = getattr(module.config, "timed_environment", False)
            if timed and modality in TIMED_MODALITIES:
                envs[modality] = module.environment_sequence(x, emb)
            else:
                envs[modality] = module.environment(x, emb)
    return envs


def resample_tokens(
    tokens: torch.Tensor, length: int, seconds: float = 1.0, to_seconds: float = 1.0
) -> torch.Tensor:
    """[B, length, Cc] from [B, T, Cc], lined up in time.

    The T steps evenly cover `seconds` from the clip's start, the `length` new steps `to_seconds`.
    A new step takes the mean of the steps whose middle falls inside it, or, where none does, the
    step nearest its middle. A pooled environment (T = 1) is repeated; a pooled receiver
    (length 1) takes the mean of every step. Unchanged when T == length and the spans agree.
    """
    steps = tokens.shape[1]
    if steps == length and seconds == to_seconds:
        return tokens
    if steps == 1:
        return tokens.expand(-1, length, -1)
    if length == 1:
        return tokens.mean(dim=1, keepdim=True)
    middles = (torch.arange(steps, dtype=torch.float64) + 0.5) * (seconds / steps)
    owner = torch.floor(middles * (length / to_seconds)).long()
    weights = torch.zeros(length, steps, dtype=torch.float64)
    inside = owner < length
    weights[owner[inside], torch.arange(steps)[inside]] = 1.0
    new_middles = (torch.arange(length, dtype=torch.float64) + 0.5) * (to_seconds / length)
    nearest = torch.floor(new_middles * (steps / seconds)).long().clamp(0, steps - 1)
    empty = weights.sum(dim=1) == 0
    weights[torch.arange(length)[empty], nearest[empty]] = 1.0
    weights = weights / weights.sum(dim=1, keepdim=True)
    return torch.einsum("jt,btc->bjc", weights.to(tokens), tokens)


def _cross_modal(
    envs: dict[str, torch.Tensor], durations: dict[str, float] | None = None
) -> dict[str, torch.Tensor]:
    """Each modality gets the plain mean of the OTHER modalities' environments (no renorm),
    each brought to the length of its own; timed environments line up in time by `durations`
    (seconds each output spans; outputs not named span the same time)."""
    durations = durations or {}
    crossed = {}
    for modality, own in envs.items():
        others = [resample_tokens(env, own.shape[1], durations.get(other, 1.0),
                                  durations.get(modality, 1.0))
                  for other, env in envs.items() if other != modality]
        if others:
            crossed[modality] = torch.stack(others).mean(dim=0)
    return crossed


def joint_forward(
    unets: dict[str, nn.Module],
    latents: dict[str, torch.Tensor],
    timestep: torch.Tensor | int,
    context: torch.Tensor,
    connectors: dict[str, nn.Module | None] | None = None,
    cross_modal: bool = False,
    durations: dict[str, float] | None = None,
) -> dict[str, torch.Tensor]:
    """eps per output modality, all conditioned on the same `context` [B,1,D].

    Official behaviour: the connectors run only when more than one modality is generated, and each
    modality attends to its OWN environment, so no information crosses modalities (quirk Q1,
    docs/quirks.md). A
    modality whose connectors are None (absent from the released files) skips them, which is
    bit-identical to the official zero-initialised connectors.

    cross_modal=True (not official, the paper's intent): each modality attends to the mean of the
    other modalities' environments instead; `durations` (seconds per output) line up timed
    environments (video and audio connectors with `timed_environment`) in time.
    """
    envs: dict[str, torch.Tensor] = {}
    if connectors and len(latents) > 1:
        envs = _environments(unets, latents, timestep, connectors)
        if cross_modal:
            envs = _cross_modal(envs, durations)
    return {
        modality: unets[modality](
            x,
            timestep,
            context,
            connectors=connectors.get(modality) if modality in envs else None,
            environment=envs.get(modality),
        )
        for modality, x in latents.items()
    }
