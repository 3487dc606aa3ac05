"""Benchmark of the playground (issue 6).

``python -m bench`` measures, for a seq2seq and a causal model: streaming overhead,
end-to-end time to first token through the app, both sides at once, stop latency,
8-bit memory and speed, loading, and the app's start-up. It writes
``bench/results/latest.json`` and ``latest.md`` and prints the table.

By default it uses tiny random models built on the fly (a couple of minutes);
``--real`` uses real models (``bench/results/real.*``); ``--quick --reps 1`` is the
smoke test's run. ``python -m bench --help`` lists every option.

Layout: ``sections/`` holds one module per measurement and the registry of sections
(``sections/__init__.py``: number, key, title, target, whether it needs the app, and its
``measure`` and ``summarize`` steps); ``runner.py`` runs the chosen ones; ``report.py``
writes the Markdown; ``cli.py`` is the command line. ``runs.py`` runs the model directly
(streamed, plain ``generate``), ``appclient.py`` serves the app in-process and talks to it,
``subjects.py`` picks the models, ``context.py`` is what the sections share.
"""
