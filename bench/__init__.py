"""Benchmark of the playground (issue 6).

``python -m bench`` measures, for a seq2seq and a causal model: streaming overhead,
end-to-end time to first token through the app, both sides at once, stop latency,
8-bit memory and speed, loading, and the app's start-up. It writes
``bench/results/latest.json`` and ``latest.md`` and prints the table.

By default it uses tiny random models built on the fly (a couple of minutes);
``--real`` uses real models (``bench/results/real.*``); ``--quick --reps 1`` is the
smoke test's run. ``python -m bench --help`` lists every option.
"""
