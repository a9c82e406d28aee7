"""The conditioning tokens a diffusion training batch is given: any modality, mixes, or nothing.

CoDi's UNets see one shared-space token at run time, from whichever inputs a person gives (mixed
by weight). Training each UNet on tokens from every modality of the same scene — and on
two-token mixes and on the unconditional tokens for classifier-free guidance — teaches it to
follow any input, which is what bridge alignment alone only approximates at nano scale.
"""

from __future__ import annotations

import numpy as np
import torch

#: How often each modality's token conditions a training row.
SOURCE_WEIGHTS = {"tok_text": 0.55, "tok_image": 0.2, "tok_video": 0.05, "tok_audio": 0.2}
#: Fraction of rows trained unconditionally (the unconditional token of their source).
UNCOND_RATE = 0.1
#: Fraction of rows conditioned on the equal-weight mix of text and one other modality.
MIX_RATE = 0.15


def pick_context(
    cache: dict[str, torch.Tensor], index: np.ndarray, rng: np.random.Generator
) -> torch.Tensor:
    """Context `[n, 1, D]` for the scenes `index`, one drawn conditioning per row (from the
    token kinds the cache has)."""
    names = [name for name in SOURCE_WEIGHTS if name in cache]  # a cache may lack some
    probs = np.array([SOURCE_WEIGHTS[name] for name in names])
    sources = rng.choice(len(names), size=len(index), p=probs / probs.sum())
    roll = rng.random(len(index))
    rows = []
    for row, (scene, source) in enumerate(zip(index, sources, strict=True)):
        name = names[source]
        if roll[row] < UNCOND_RATE:
            token = cache[f"uncond_{name}"]
        elif roll[row] < UNCOND_RATE + MIX_RATE and name != "tok_text":
            token = (cache["tok_text"][scene] + cache[name][scene]) / 2
        else:
            token = cache[name][scene]
        rows.append(token)
    return torch.stack(rows)[:, None]
