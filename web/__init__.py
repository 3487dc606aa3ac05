"""The web layer: Gradio handlers, the page, the API, serving and the command line.

Knows Gradio, not torch. Runs go through the run layer (:mod:`models.run`); a request is parsed once, where it
enters, into :mod:`models.request`'s objects; the rest of :mod:`models` it uses is vocabulary (settings, kinds,
presets, prompt-set rows) and the registry's model lists. ``app.py`` composes it.
"""
