"""Parity checks for CLAP (parity README §3.9, docs/quirks.md).

The front end, the embeddings, and the official NumPy-seeded crop of long clips.
"""

from __future__ import annotations

import numpy as np
import torch

from codi.models.clap import CodiClapAudioModel
from codi.models.clap_features import clap_log_mel, resample
from codi.parity.fixtures import Comparison, FixtureContext
from codi.parity.tolerances import FORWARD_ATOL, LOG_MEL_DB_ATOL


def check_clap(ctx: FixtureContext) -> list[Comparison]:
    """Log-mel, short/zero/long-clip embeddings and the first resampled samples."""
    model: CodiClapAudioModel = ctx.model("clap")
    t = ctx.tensors
    wave, long_wave = t["wave_16k"], t["long_wave_16k"]
    seed = int(ctx.param("np_random_seed"))
    # The official unconditional is a silent clip of the batch its expected embedding has.
    silence = torch.zeros(ctx.expected_shape("zero_audio_embed")[0], *wave.shape[1:])
    # RandomState(s) yields the same stream as the official `np.random.seed(s)` global RNG.
    first16 = resample(long_wave).reshape(-1)[: t["long_wave_48k_first16"].numel()]
    long_embed = model.encode_audio(long_wave, crop="official", rng=np.random.RandomState(seed))
    return [
        Comparison("logmel", clap_log_mel(wave), t["logmel"], LOG_MEL_DB_ATOL),
        Comparison("audio_embed", model.encode_audio(wave), t["audio_embed"], FORWARD_ATOL),
        Comparison(
            "zero_audio_embed",
            model.encode_audio(silence),
            t["zero_audio_embed"],
            FORWARD_ATOL,
        ),
        Comparison("long_wave_48k_first16", first16, t["long_wave_48k_first16"], FORWARD_ATOL),
        Comparison(
            "long_audio_embed_npseed0", long_embed, t["long_audio_embed_npseed0"], FORWARD_ATOL
        ),
    ]


CHECKS = {"clap": check_clap}
