"""What each input accepts, in a sentence, from the media limits the pipeline enforces."""

from __future__ import annotations

from codi.media.limits import MediaLimits
from codi.pipeline.request import MAX_FRAMES, MAX_IMAGE_SIZE, MAX_SAMPLES


def _size(limits: MediaLimits) -> str:
    return f"{limits.max_file_bytes / 2**20:g} MiB"


def _too_long(limits: MediaLimits, seconds: float) -> str:
    if limits.too_long == "refuse":
        return f"longer files are refused (limit {seconds:g} s)"
    return f"only the first {seconds:g} s of longer files are read"


def input_hints(limits: MediaLimits) -> dict[str, str]:
    """One hint per input modality."""
    return {
        "text": "A prompt, in English. CLIP reads its first 77 tokens.",
        "image": (
            f"PNG, JPEG, WebP, GIF (first frame), BMP or TIFF, up to "
            f"{limits.max_image_pixels / 1e6:g} MP and {_size(limits)}. It is centre-cropped to "
            "a square; transparent pixels count as white."
        ),
        "audio": (
            f"Upload WAV, FLAC, OGG, MP3 or M4A (up to {_size(limits)}) or record with the "
            f"microphone. Mixed to mono at 16 kHz; {_too_long(limits, limits.max_audio_seconds)}"
            "; CoDi listens to the middle 10 s."
        ),
        "video": (
            f"Upload MP4, WebM, MOV or MKV (up to {_size(limits)}) or record with the webcam. "
            f"8 frames are taken evenly over the clip; "
            f"{_too_long(limits, limits.max_video_seconds)}."
        ),
    }


SETTING_HINTS = {
    "steps": "Denoising steps: more is slower and usually cleaner (official: 50).",
    "sampler": "ddim is CoDi's own sampler (the official results); dpmpp_2m(_karras), unipc, "
               "euler and euler_ancestral are diffusers' alternatives on the same schedule.",
    "guidance_scale": "How strongly the inputs steer the result. 1 turns guidance off and "
                      "halves the work; 7.5 is the official value.",
    "negative_text": "What to steer away from (a text prompt).",
    "image_size": f"Side of generated images and videos, a multiple of 64 up to {MAX_IMAGE_SIZE}.",
    "num_frames": f"Frames of a generated video (up to {MAX_FRAMES}).",
    "fps": "Playback speed of a generated video. CoDi's clips are 8 frames at 4 fps (2 s).",
    "num_samples": f"Results per output (up to {MAX_SAMPLES}). Players show the first; "
                   "every sample is in the downloads.",
    "text_mode": "sample: varied wording (official); greedy: the most likely words.",
    "temperature": "Sampling temperature of generated text (1 = official).",
    "max_tokens": "Longest generated text, in GPT-2 tokens (official: 30).",
    "start": "A chosen image, audio or video output can start from a file instead of from "
             "noise (SDEdit): the file is noised to the step the strength selects and the "
             "remaining steps redraw it, steered by the inputs. Text outputs cannot start from "
             "a file. \"Use as start\" under a result puts it here.",
}
SETTING_HINTS |= {
    f"start_{kind}_strength": f"0 returns the start {kind} as it is; 1 ignores it (ordinary "
                              "generation from the seed); in between, higher changes more."
    for kind in ("image", "audio", "video")
}
