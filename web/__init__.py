"""The web layer: Gradio handlers, the page, the API, serving and the command line.

Knows Gradio; reaches the models only through :mod:`models.run`. ``app.py`` composes it.
"""
