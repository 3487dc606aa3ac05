"""UI pieces: Gradio components and pure formatting helpers. Knows nothing of torch."""
