"""The Gradio Blocks app."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ui.status import model_status_markdown


def build_app(model_dir: Path | None) -> gr.Blocks:
    """The studio page. For now: the model status panel; generation arrives with the pipeline."""
    with gr.Blocks(title="CoDi Studio") as app:
        gr.Markdown("# CoDi Studio\nAny-to-any generation with Composable Diffusion (CoDi).")
        gr.Markdown(model_status_markdown(model_dir), elem_id="model-status")
    return app
