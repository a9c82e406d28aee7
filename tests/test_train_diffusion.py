"""Stage-1 latent diffusion batches (codi.train.diffusion): noising and the pure-noise rows."""

from __future__ import annotations

import numpy as np
import torch

from codi.nano.config import nano_official
from codi.sampling import make_scheduler
from codi.train import diffusion

ALPHAS = make_scheduler().alphas_cumprod.float()


def _noised(n: int = 64, seed: int = 0):
    latents = torch.randn(n, 8, 4, 2) + 1.5
    rng = np.random.default_rng(seed)
    x_t, t, eps = diffusion.noised(latents, ALPHAS, rng)
    return latents, x_t, t, eps, rng


def test_pure_noise_rows_start_from_noise_and_lead_back_to_their_latent():
    latents, x_t, t, eps, rng = _noised()
    t[:8] = torch.arange(992, 1000)  # make sure some rows are high enough
    t[8:16] = torch.arange(0, 800, 100)
    x_t = ALPHAS[t].sqrt().view(-1, 1, 1, 1) * latents + (1 - ALPHAS[t]).sqrt().view(
        -1, 1, 1, 1) * eps
    new_x, new_eps = diffusion.pure_noise_rows(x_t, t, eps, latents, ALPHAS, 1.0, rng)
    high = t >= diffusion.PURE_NOISE_FROM_T
    assert high.sum() >= 8 and (~high).sum() >= 8
    torch.testing.assert_close(new_x[high], eps[high])  # the sampler's start: pure noise
    torch.testing.assert_close(new_x[~high], x_t[~high])  # the rest untouched
    torch.testing.assert_close(new_eps[~high], eps[~high])
    a = ALPHAS[t].view(-1, 1, 1, 1)
    # The target noise is the one whose x_0 prediction from the new input is the row's latent.
    predicted_x0 = (new_x - (1 - a).sqrt() * new_eps) / a.sqrt()
    torch.testing.assert_close(predicted_x0, latents, atol=2e-3, rtol=1e-4)


def test_rate_zero_changes_nothing_and_draws_nothing():
    latents, x_t, t, eps, rng = _noised()
    state = rng.bit_generator.state
    same_x, same_eps = diffusion.pure_noise_rows(x_t, t, eps, latents, ALPHAS, 0.0, rng)
    assert same_x is x_t and same_eps is eps
    assert rng.bit_generator.state == state  # image/text batches stay what they were


def test_audio_batches_use_pure_noise_rows_and_image_batches_do_not(monkeypatch):
    monkeypatch.setattr(diffusion, "PURE_NOISE_FROM_T", 0)  # every row is a top-step row
    monkeypatch.setitem(diffusion.PURE_NOISE_RATE, "audio", 1.0)
    n, official = 16, nano_official()
    tokens = {"tok_text": torch.randn(n, 32), "uncond_tok_text": torch.randn(32)}

    def batch(modality: str, shift: float) -> dict:
        cache = {modality: torch.randn(n, 4, 8, 8, generator=torch.Generator().manual_seed(1))
                 + shift, "video": torch.zeros(n, 4, 2, 8, 8), **tokens}
        return diffusion.diffusion_batches(modality, cache, official)(
            np.random.default_rng(5), 8)

    audio_a, audio_b = batch("audio", 0.0), batch("audio", 3.0)
    # The input no longer depends on the latent; the target noise does.
    torch.testing.assert_close(audio_a["x_t"], audio_b["x_t"])
    assert not torch.allclose(audio_a["eps"], audio_b["eps"])
    image_a, image_b = batch("image", 0.0), batch("image", 3.0)
    assert not torch.allclose(image_a["x_t"], image_b["x_t"])
    torch.testing.assert_close(image_a["eps"], image_b["eps"])
