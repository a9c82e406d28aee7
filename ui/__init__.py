"""The Gradio front end of CoDi Studio. It validates and displays; it never touches tensors."""
