"""Stage 1 autoencoders of CoDi-Nano in one command: image VAE, audio VAE, vocoder, Optimus.

    python -m codi.train.autoencoders --run-dir runs/nano [--stages vae_image optimus]
    accelerate launch -m codi.train.autoencoders --run-dir runs/nano

Finished stages are loaded from the run folder, interrupted ones resume from their checkpoint.
Afterwards the quality of each autoencoder is measured on a fixed world sample and written to
`run_dir/<stage>/quality.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from torch import nn

from codi.models.official_config import OfficialConfig
from codi.nano.config import nano_official
from codi.train.loop import stage_dir
from codi.train.optimus import OPTIMUS_STAGE, caption_quality, eval_captions, train_optimus
from codi.train.vae import (
    AUDIO_STAGE,
    IMAGE_STAGE,
    eval_images,
    eval_scenes,
    eval_sounds,
    image_psnr,
    load_scale_factor,
    mel_l1,
    train_vae_audio,
    train_vae_image,
)
from codi.train.vocoder import VOCODER_STAGE, train_vocoder, vocoder_quality

Trainer = Callable[..., dict[str, nn.Module]]
STAGES: dict[str, Trainer] = {
    IMAGE_STAGE: train_vae_image,
    AUDIO_STAGE: train_vae_audio,
    VOCODER_STAGE: train_vocoder,
    OPTIMUS_STAGE: train_optimus,
}


def stage_quality(stage: str, modules: dict[str, nn.Module]) -> dict[str, float]:
    """Reconstruction quality of a trained stage on the fixed evaluation sample."""
    if stage == IMAGE_STAGE:
        return {"psnr_db": image_psnr(modules[IMAGE_STAGE], eval_images())}
    if stage == AUDIO_STAGE:
        return {"mel_l1": mel_l1(modules[AUDIO_STAGE], eval_sounds())}
    if stage == VOCODER_STAGE:
        return vocoder_quality(modules[VOCODER_STAGE], eval_scenes())
    return caption_quality(modules["optimus_encoder"], modules["optimus_decoder"], eval_captions())


def latent_scale_factors(run_dir: Path) -> dict[str, float]:
    """Scale factors of the finished stages, keyed "image", "audio", "text" for `nano_official`."""
    stages = {"image": IMAGE_STAGE, "audio": AUDIO_STAGE, "text": OPTIMUS_STAGE}
    return {
        modality: load_scale_factor(run_dir, stage) for modality, stage in stages.items()
        if (stage_dir(run_dir, stage) / "scale_factor.json").exists()
    }


def train_autoencoders(
    official: OfficialConfig, run_dir: Path, stages: list[str] | None = None, accelerator=None
) -> dict[str, nn.Module]:
    """Train (or load) the chosen stages; write and print each one's quality."""
    modules: dict[str, nn.Module] = {}
    for stage in stages or list(STAGES):
        trained = STAGES[stage](official, run_dir, accelerator=accelerator)
        modules.update(trained)
        if accelerator is None or accelerator.is_main_process:
            quality = stage_quality(stage, trained)
            (stage_dir(run_dir, stage) / "quality.json").write_text(json.dumps(quality, indent=2))
            print(f"{stage}: {quality}", flush=True)
    return modules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m codi.train.autoencoders",
        description="Train CoDi-Nano's stage-1 autoencoders on the synthetic world.",
    )
    parser.add_argument("--run-dir", type=Path, required=True, help="run folder (resumable)")
    parser.add_argument("--stages", nargs="+", choices=list(STAGES), help="default: all four")
    args = parser.parse_args(argv)
    from accelerate import Accelerator

    accelerator = Accelerator()
    train_autoencoders(nano_official(), args.run_dir, args.stages, accelerator)
    if accelerator.is_main_process:
        print(f"scale factors: {latent_scale_factors(args.run_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
