"""Seq2seq vs causal playground: one prompt, two models, both streaming side by side.

Run ``python app.py`` and open http://127.0.0.1:7860. ``python app.py --help`` lists options.

This file only composes: the command line (``web/config.py``) decides the configuration, the run
layer (``models/run.py``) runs models, the page (``web/page.py``) shows them, ``web/serving.py`` launches.
"""

from __future__ import annotations

import os
import time
from typing import Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no analytics calls from a public demo

from models import Kind  # noqa: E402
from models.remote import EndpointError  # noqa: E402
from web.config import command_line_error, parse_args, start_models_error  # noqa: E402
from web.disk import handle_signals  # noqa: E402
from web.page import build_page  # noqa: E402
from web.serving import LaunchError, build_runner, launch, open_host_warning, ready_line  # noqa: E402


def main(argv: Sequence[str] | None = None) -> None:
    """Start the playground: serve, then (once the server answers) preload the start-up models, then
    serve until SIGTERM or SIGINT. A server that cannot start ends the process: exit status 1 and one
    ``error: could not start the server: ...`` line, never a page left without the process behind it."""
    config, address = parse_args(argv)
    try:
        runner = build_runner(config)
    except EndpointError as exc:  # an --endpoint that cannot be used: refuse to start, saying why (exit 2)
        command_line_error(f"argument --endpoint: {exc}")
    problem = start_models_error(config, runner.registry.resolve, runner.registry.availability)
    if problem:  # a --seq2seq / --causal model that is not here: one line, exit 2, before anything is served
        command_line_error(problem)
    page = build_page(runner, config)  # opens the --db store; one line when it cannot, and the app starts anyway
    if page.evidence is not None and page.evidence.problem:
        print(page.evidence.problem, flush=True)
    warning = open_host_warning(address.host, config)
    if warning:
        print(warning)
    handle_signals()  # SIGTERM and SIGINT: remove the exports, close the server (Gradio deletes its cache files)
    try:
        try:
            # quiet: Gradio's own lines would suggest share=True, which this app never uses; it says where it is
            url = launch(page.demo, config, host=address.host, port=address.port, quiet=True)  # once it answers
        except LaunchError as exc:  # nothing is left running
            raise SystemExit(f"error: could not start the server: {exc}") from None
        print(ready_line(url, address.port), flush=True)
        if config.preload:  # only now: loading earlier would slow the server's own start-up check
            runner.preload([name for name in (runner.default_model(Kind.SEQ2SEQ, config.seq2seq),
                                              runner.default_model(Kind.CAUSAL, config.causal)) if name])
        while page.demo.is_running:  # until SIGTERM or SIGINT (raised here as KeyboardInterrupt)
            time.sleep(0.1)
    except KeyboardInterrupt:  # the cleanups ran; now close the server, if it started
        pass
    # Not Gradio's block_thread: on an interrupt it closes the server without ending the open heartbeat
    # streams, so the server waited for every open page (SIGTERM took 7-30 s); close() ends them first.
    page.demo.close(verbose=False)
    if page.evidence is not None:
        page.evidence.close()


if __name__ == "__main__":
    main()
