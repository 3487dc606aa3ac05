"""What every section needs: the two models, the settings of the run, and the app while it is served."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gradio_client import Client

from models import GenerationSettings, Kind, LoadedModel, ModelCache, ModelRegistry
from models.run import Runner

from .subjects import Subject

SIDES = (Kind.SEQ2SEQ, Kind.CAUSAL)


@dataclass
class App:
    """The app served in-process, as the sections that need it see it.

    Args:
        url: its loopback address.
        runner: its run layer (``stop_events(session)`` lets a section time the stop handler).
        client: a ``gradio_client`` connected to it.
    """

    url: str
    runner: Runner
    client: Client


@dataclass
class Context:
    """The run's models and settings, shared by the sections.

    Args:
        subjects: the model measured on each side.
        registry: resolves the models' names (the app serves this registry).
        cache: the process-wide model cache (the app serves this cache).
        reps: repetitions per figure.
        prompt: the prompt of every generation.
        max_new_tokens: tokens per generation (throughput, side by side, 8-bit).
        ttft_tokens: tokens per generation when only the start matters (time to first token).
        stop_tokens: tokens per generation that is stopped mid-way (stop latency).
        gguf_reps: repetitions of the GGUF first load.
        model_dir: ``--model-dir`` of the start-up measurement.
        work: scratch folder, removed at the end.
        log: prints a progress line.
        quick: a smoke run (``--quick``): sections that take minutes measure a small part of what they would.
    """

    subjects: dict[Kind, Subject]
    registry: ModelRegistry
    cache: ModelCache
    reps: int
    prompt: str
    max_new_tokens: int
    ttft_tokens: int
    stop_tokens: int
    gguf_reps: int
    model_dir: Path
    work: Path
    log: Callable[[str], None]
    quick: bool = False
    loaded: dict[Kind, LoadedModel] = field(default_factory=dict)
    token_time: dict[Kind, float] = field(default_factory=dict)  # seconds a token, from the streaming section
    served: App | None = None  # set by the runner while the sections that need the app run

    @property
    def app(self) -> App:
        """The app served in-process (only while a section that needs it runs)."""
        if self.served is None:
            raise RuntimeError("this section needs the app: register it with needs_app=True")
        return self.served

    def settings(self, max_new_tokens: int | None = None) -> GenerationSettings:
        """Greedy, fixed length, the causal side in its chat template when it has one."""
        return GenerationSettings(max_new_tokens=max_new_tokens or self.max_new_tokens)

    def name(self, kind: Kind) -> str:
        """The name the app and the cache know ``kind``'s model by."""
        return self.subjects[kind].source.name

    def model(self, kind: Kind) -> LoadedModel:
        """``kind``'s model, loaded once (the loading section puts its last cold load here)."""
        if kind not in self.loaded:
            self.loaded[kind] = self.cache.get(self.subjects[kind].source)
        return self.loaded[kind]

    def rep_log(self, what: str, rep: int) -> None:
        """``<what> rep 2/5``."""
        self.log(f"{what} rep {rep + 1}/{self.reps}")
