"""Seq2seq vs causal playground: one prompt, two models, both streaming side by side.

Run ``python app.py`` and open http://127.0.0.1:7860. ``python app.py --help`` lists options.

This file only composes: the command line (``web/config.py``) decides the configuration, the run
layer (``models/run.py``) runs models, the page (``web/page.py``) shows them, ``web/serving.py`` launches.
"""

from __future__ import annotations

import os
from typing import Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no analytics calls from a public demo

from models import Kind  # noqa: E402
from models.remote import EndpointError  # noqa: E402
from web.config import parse_args  # noqa: E402
from web.disk import handle_signals  # noqa: E402
from web.page import build_page  # noqa: E402
from web.serving import LaunchError, build_runner, launch, open_host_warning  # noqa: E402


def main(argv: Sequence[str] | None = None) -> None:
    """Start the playground: serve, then (once the server answers) preload the start-up models, then
    serve until SIGTERM or SIGINT. A server that cannot start ends the process: exit status 1 and one
    ``error: could not start the server: ...`` line, never a page left without the process behind it."""
    config, address = parse_args(argv)
    try:
        runner = build_runner(config)
    except EndpointError as exc:  # an --endpoint that cannot be used: refuse to start, saying why
        raise SystemExit(f"error: {exc}") from None
    page = build_page(runner, config)
    warning = open_host_warning(address.host, config)
    if warning:
        print(warning)
    handle_signals()  # SIGTERM and SIGINT: remove the exports, close the server (Gradio deletes its cache files)
    try:
        try:
            launch(page.demo, config, host=address.host, port=address.port)  # returns once the server answers
        except LaunchError as exc:  # nothing is left running
            raise SystemExit(f"error: could not start the server: {exc}") from None
        if config.preload:  # only now: loading earlier would slow the server's own start-up check
            runner.preload([name for name in (runner.default_model(Kind.SEQ2SEQ, config.seq2seq),
                                              runner.default_model(Kind.CAUSAL, config.causal)) if name])
        page.demo.block_thread()  # until SIGTERM or SIGINT, when Gradio closes the server
    except KeyboardInterrupt:  # a signal while starting: the cleanups ran; the server is closed if it started
        page.demo.close(verbose=False)


if __name__ == "__main__":
    main()
