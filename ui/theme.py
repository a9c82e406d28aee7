"""The studio's look: a Gradio theme (local fonts only, so the page works offline) and CSS."""

from __future__ import annotations

import gradio as gr

THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="violet", neutral_hue="slate")

CSS = """
.gradio-container { max-width: 1320px !important; margin: auto; }
#studio-header h1 { margin-bottom: 0; font-size: 2.1em; }
#studio-header p { margin-top: .2em; opacity: .8; }
#model-status { border-left: 4px solid var(--color-accent); padding: .4em 1em;
  background: var(--block-background-fill); border-radius: 6px; }
#model-status.tiny-random { border-left-color: #f59e0b; }
.hint { font-size: .85em; opacity: .75; margin: .1em .3em .4em; }
.hint p { margin: 0; }
#inputs-summary { min-height: 1.6em; font-size: .95em; }
#run-status { min-height: 4.5em; }
#run-row button { min-height: 3em; font-size: 1.05em; }
.slot-row { align-items: center; }
#history-gallery { min-height: 120px; }
footer { opacity: .7; }
"""
