"""What a generation returns: the outputs, and everything needed to reproduce them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from codi.models.mel import SAMPLE_RATE


@dataclass
class GenerationResult:
    """Outputs per modality (one entry per sample) plus the exact settings used.

    metadata: the request (inputs summarised, settings with the seed actually used), the model
    (id, kind, weight hashes), timings, and any notices (cropped media, reconciled lengths).
    """

    images: list[Image.Image] = field(default_factory=list)
    videos: list[np.ndarray] = field(default_factory=list)
    audios: list[np.ndarray] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The files written by the last `save()`.
    paths: list[Path] = field(default_factory=list)

    def save(self, out_dir: Path, stem: str = "codi", reconcile: str = "trim_audio") -> list[Path]:
        """Write every output into out_dir (PNG, MP4, WAV, TXT, each with the metadata).

        When both video and audio were generated, each video gets its sample's audio muxed in;
        `reconcile` says how their lengths are matched (see codi.media.writers.save_mp4).
        """
        from codi.media.writers import save_mp4, save_png, save_text, save_wav

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        fps = float(self.metadata.get("settings", {}).get("fps", 4.0))
        if self.videos and self.audios:
            self.metadata["video_audio"] = {
                "reconcile": reconcile,
                "video_duration_s": round(len(self.videos[0]) / fps, 3),
                "audio_duration_s": round(len(self.audios[0]) / SAMPLE_RATE, 3),
            }
        for i, image in enumerate(self.images):
            written.append(save_png(image, out_dir / f"{stem}_image_{i}.png", self.metadata))
        for i, frames in enumerate(self.videos):
            audio = self.audios[i] if i < len(self.audios) else None
            info = save_mp4(
                frames, fps, out_dir / f"{stem}_video_{i}.mp4", audio=audio,
                audio_rate=SAMPLE_RATE, reconcile=reconcile, metadata=self.metadata,
            )
            written.append(info.path)
        for i, wave in enumerate(self.audios):
            path = out_dir / f"{stem}_audio_{i}.wav"
            written.append(save_wav(wave, SAMPLE_RATE, path, self.metadata))
        for i, text in enumerate(self.texts):
            written.append(save_text(text, out_dir / f"{stem}_text_{i}.txt", self.metadata))
        self.paths = [Path(p) for p in written]
        return self.paths

    def save_thumbnail(self, path: Path) -> Path:
        """A square PNG picturing this result (see codi.media.thumbnails), for galleries."""
        from codi.media.thumbnails import save_thumbnail

        return save_thumbnail(Path(path), self.images, self.videos, self.audios, self.texts)
