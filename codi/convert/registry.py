"""All component specs, and which spec owns an official key."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from codi.convert.maps import audio, clap, clip, optimus, unet, unet_text, vae_image
from codi.convert.spec import ComponentSpec

#: Official top-level keys that are recomputed instead of converted (the DDPM schedule buffers).
SCHEDULE_BUFFERS = frozenset(
    {
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod",
        "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
        "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
        "lvlb_weights",
    }
)


@cache
def all_specs() -> tuple[ComponentSpec, ...]:
    """Every component of CoDi, in the order they are converted and reported."""
    return tuple(
        spec
        for module in (unet, unet_text, vae_image, audio, optimus, clip, clap)
        for spec in module.SPECS
    )


def spec_by_name(name: str) -> ComponentSpec:
    """The spec of one component (sub-folder name)."""
    for spec in all_specs():
        if spec.name == name:
            return spec
    raise KeyError(f"no component named {name!r}")


def owner_of(
    key: str, specs: Iterable[ComponentSpec] | None = None
) -> tuple[ComponentSpec, str] | None:
    """The spec whose longest prefix matches an official key, and the key without that prefix."""
    best: tuple[ComponentSpec, str] | None = None
    best_len = -1
    for spec in all_specs() if specs is None else specs:
        for prefix in spec.prefixes:
            if key.startswith(prefix) and len(prefix) > best_len:
                best, best_len = (spec, spec.relative_key(key, prefix)), len(prefix)
    return best
