"""One loader that picks device, dtype and quantization, and a process-wide cache.

Example:
    >>> cache = ModelCache(max_models=2)                       # doctest: +SKIP
    >>> loaded = cache.get(ModelRegistry().resolve("google/flan-t5-small"))  # doctest: +SKIP
    >>> loaded.description.to_dict()["params_text"]            # doctest: +SKIP
    '77M'
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError
from packaging.version import InvalidVersion, Version
from safetensors import SafetensorError
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from .detect import AUTO_CLASSES, MODEL_BUILD_LOCK, Architecture, UnsupportedModelError, detect
from .presets import Kind
from .settings import Precision, SettingsError, parse_precision
from .sources import ModelSource

log = logging.getLogger(__name__)
hf_logging.disable_progress_bar()  # server logs, not terminal progress bars

# Model types whose activations overflow in float16 (FLAN-T5 gives NaNs): bf16 or fp32 only, never fp16.
FP16_UNSAFE_MODEL_TYPES = frozenset({"t5", "mt5", "umt5", "longt5", "switch_transformers", "pegasus", "pegasus_x"})
BNB_CPU_VERSION = Version("0.48")  # the first bitsandbytes that quantizes on CPU
GGUF_CACHE_DIR = Path(os.environ.get("PLAYGROUND_CACHE", Path.home() / ".cache" / "seq2seq-causal-playground")) / "gguf"


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why in plain words."""


@dataclass(frozen=True)
class ModelDescription:
    """Everything a user may want to know about a loaded model.

    Args:
        name: the name it was picked by.
        kind: seq2seq or causal.
        auto_class / resolved_class: the Auto class used and the concrete class it resolved to.
        model_type: the config's model_type.
        params: parameter count.
        dtype: parameter dtype as text (``"float32"``; 8-bit layers show as ``int8`` in ``quantization``).
        device: ``"cpu"`` or ``"cuda:0"``.
        memory_bytes: ``model.get_memory_footprint()``.
        quantization: ``"none"`` or ``"8-bit (bitsandbytes)"``.
        origin: where the weights came from.
        revision: the commit hash when known (hub models), else ``None``.
        load_seconds: how long loading took (0 when served from the cache).
        precision: the precision that runs (``"bfloat16"``, ``"8-bit"``…; never ``"auto"``: the loader resolved it).
        vocabulary: a short fingerprint of the tokenizer's vocabulary: two models with the same one number
            their tokens alike (the same model in two precisions, two sizes of one family).
    """

    name: str
    kind: Kind
    auto_class: str
    resolved_class: str
    model_type: str
    params: int
    dtype: str
    device: str
    memory_bytes: int
    quantization: str
    origin: str
    revision: str | None
    load_seconds: float
    precision: str = Precision.FLOAT32.value
    vocabulary: str | None = None

    @property
    def params_text(self) -> str:
        """``"77M"`` / ``"1.2B"`` / ``"45K"``."""
        for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
            if self.params >= size:
                return f"{self.params / size:.3g}{unit}"
        return str(self.params)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with ``params_text`` and the plain-words ``architecture`` of its kind."""
        return {
            "name": self.name, "kind": self.kind.value, "architecture": self.kind.architecture,
            "auto_class": self.auto_class, "resolved_class": self.resolved_class, "model_type": self.model_type,
            "params": self.params, "params_text": self.params_text, "dtype": self.dtype, "device": self.device,
            "memory_bytes": self.memory_bytes, "quantization": self.quantization, "origin": self.origin,
            "revision": self.revision, "load_seconds": round(self.load_seconds, 3), "precision": self.precision,
            "vocabulary": self.vocabulary,
        }


@dataclass
class LoadedModel:
    """A model ready to generate, with its tokenizer and description."""

    source: ModelSource
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    architecture: Architecture
    description: ModelDescription
    load_kwargs: dict[str, Any]
    requested: Precision = Precision.AUTO  # the precision asked for (``description.precision``: what it resolved to)

    @property
    def kind(self) -> Kind:
        return self.architecture.kind


def pick_device() -> str:
    """``"cuda"`` when a GPU is present, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


_DTYPES = {Precision.FLOAT32: torch.float32, Precision.BFLOAT16: torch.bfloat16, Precision.FLOAT16: torch.float16}


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles), as torch reports it.

    ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is not asked: oneDNN answers True on any AVX512
    CPU, where bfloat16 is emulated and slower than float32.
    """
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except Exception:  # noqa: BLE001 - a torch without the probe, or one that cannot answer: not native
            continue
    return False


def _gpu_bf16() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def precision_refusal(precision: Precision, device: str, model_type: str | None = None) -> str | None:
    """Why ``precision`` cannot run on ``device`` (for ``model_type`` when known), else ``None``."""
    if precision is Precision.FLOAT16:
        if device == "cpu":
            return ("float16 runs on a GPU only, and this machine has none (CPUs have no fast float16): "
                    "pick auto, bfloat16 or float32")
        if model_type in FP16_UNSAFE_MODEL_TYPES:
            return (f"float16 is refused for '{model_type}' models: their activations overflow in float16 "
                    "(FLAN-T5 writes NaN); pick auto, bfloat16 or float32")
    if precision is Precision.BFLOAT16 and device != "cpu" and not _gpu_bf16():
        return "this GPU has no bfloat16 support; pick auto, float16 or float32"
    if precision is Precision.INT8:
        available, reason = eight_bit_status(device)
        return None if available else reason
    return None


def resolve_precision(requested: Precision | str, config: PretrainedConfig | None, device: str) -> Precision:
    """The precision that runs: ``auto`` made concrete, an explicit choice checked. The one place that decides.

    auto: bfloat16 on a CPU with native bf16 (:func:`cpu_has_native_bf16`) and on a GPU that supports it;
    float16 on other GPUs, except fp16-unsafe families (:data:`FP16_UNSAFE_MODEL_TYPES`: T5…), which get
    float32; float32 otherwise.

    Raises:
        ModelLoadError: an explicit choice that cannot run here (float16 on CPU or on T5, …), saying why.
    """
    precision = Precision(requested)
    model_type = getattr(config, "model_type", None) if config is not None else None
    if precision is Precision.AUTO:
        if device == "cpu":
            return Precision.BFLOAT16 if cpu_has_native_bf16() else Precision.FLOAT32
        if _gpu_bf16():
            return Precision.BFLOAT16
        return Precision.FLOAT32 if model_type in FP16_UNSAFE_MODEL_TYPES else Precision.FLOAT16
    refusal = precision_refusal(precision, device, model_type)
    if refusal:
        raise ModelLoadError(f"precision: {refusal}")
    return precision


def check_precision(precision: Any, load_in_8bit: Any = None, device: str | None = None, *,
                    field: str = "precision", legacy_field: str = "load_in_8bit") -> Precision:
    """The :class:`Precision` a visitor or API caller asked for, refused before anything runs when it cannot
    run on this machine at all (float16 without a GPU, 8-bit without bitsandbytes). What depends on the model
    (float16 on T5) is refused when it loads.

    Raises:
        SettingsError: naming ``field`` (or ``legacy_field`` for a conflict) with the reason.
    """
    chosen = parse_precision(precision, load_in_8bit, field=field, legacy_field=legacy_field)
    refusal = precision_refusal(chosen, device or pick_device())
    if refusal:
        raise SettingsError(field, refusal)
    return chosen


def pick_dtype(config: PretrainedConfig, device: str, precision: Precision | str = Precision.AUTO) -> torch.dtype:
    """The torch dtype of the weights for ``precision`` (``auto`` resolved by :func:`resolve_precision`).

    8-bit keeps its non-quantized layers in float32 on CPU (bitsandbytes computes there in float32)
    and in auto's float dtype on a GPU (never float16 for the T5 family).
    """
    resolved = resolve_precision(precision, config, device)
    if resolved is Precision.INT8:
        if device == "cpu":
            return torch.float32
        resolved = resolve_precision(Precision.AUTO, config, device)
    return _DTYPES[resolved]


def auto_precision_text(device: str | None = None) -> str:
    """What auto means on this machine, in words (the page's precision selector shows it)."""
    device = device or pick_device()
    if device == "cpu":
        return ("bfloat16 here (this CPU computes bfloat16 natively)" if cpu_has_native_bf16()
                else "float32 here (this CPU has no native bfloat16)")
    if _gpu_bf16():
        return "bfloat16 here (this GPU supports it)"
    return "float16 here (float32 for the T5 family, which overflows in float16)"


def precision_options(device: str | None = None) -> tuple[list[tuple[str, str]], str]:
    """The precision selector's ``(label, value)`` choices and its help line, for ``device``.

    Every choice stays listed; one that cannot run here says so in its label and is refused, with
    the reason, when a run asks for it.
    """
    device = device or pick_device()
    choices = [(f"auto ({auto_precision_text(device).split(' (')[0]})", Precision.AUTO.value)]
    for precision in (Precision.FLOAT32, Precision.BFLOAT16, Precision.FLOAT16, Precision.INT8):
        label = "8-bit (bitsandbytes)" if precision is Precision.INT8 else precision.value
        refusal = precision_refusal(precision, device)
        if refusal:
            label += " — unavailable here" if precision is not Precision.FLOAT16 else " — GPU only, unavailable here"
        choices.append((label, precision.value))
    _ok, eight_bit = eight_bit_status(device)
    info = f"auto = {auto_precision_text(device)} · float16: GPU only, never for T5 · {eight_bit}"
    return choices, info


def eight_bit_status(device: str | None = None) -> tuple[bool, str]:
    """Whether 8-bit loading works here, and a sentence saying why (not).

    bitsandbytes >= 0.48 quantizes on CPU as well as on CUDA.
    """
    device = device or pick_device()
    if importlib.util.find_spec("bitsandbytes") is None:
        return False, "8-bit needs the bitsandbytes package, which is not installed (pip install bitsandbytes)"
    try:
        bnb_version = importlib.metadata.version("bitsandbytes")
    except importlib.metadata.PackageNotFoundError:  # importable, but installed without metadata
        bnb_version = "0"
    try:
        quantizes_on_cpu = Version(bnb_version) >= BNB_CPU_VERSION
    except InvalidVersion:
        quantizes_on_cpu = False
    if device == "cpu" and not quantizes_on_cpu:
        return False, f"bitsandbytes {bnb_version} quantizes on GPU only; 8-bit on CPU needs bitsandbytes >= 0.48"
    where = "GPU" if device.startswith("cuda") else "CPU"
    return True, (f"8-bit available on {where} (bitsandbytes {bnb_version}, the library that stores the weights as "
                  "8-bit integers): about half the memory, usually slower")


def _raised_from(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from: transformers wraps hub errors in ``OSError(...) from error``."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__
    return chain


def _friendly(exc: BaseException, source: ModelSource) -> str:
    """Turn a transformers / hub exception into one readable sentence."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    name = type(exc).__name__
    low = str(exc).lower()
    chain = _raised_from(exc)
    wrapped = isinstance(exc, OSError)  # transformers' own words when it wraps a hub error (and lost its cause)
    if "trust_remote_code" in low or "custom code" in low:
        return f"{source.name} needs custom code from its repository to run; this playground never runs remote code (trust_remote_code is off)"
    if any(isinstance(error, RepositoryNotFoundError) for error in chain) or (wrapped and "is not a valid model identifier" in low):
        return f"{source.name} was not found on the Hugging Face hub (or is private or gated)"  # GatedRepoError included
    if any(isinstance(error, (LocalEntryNotFoundError, OfflineModeIsEnabled)) for error in chain) or (wrapped and "couldn't connect" in low):
        return f"{source.name} is not on this machine and the Hugging Face hub cannot be reached; download it once with a connection, or use --model-dir"
    if "model.safetensors" in low and ("does not appear" in low or "no file named" in low):
        if source.local and not any(Path(source.path).glob("*.bin")):  # no weights at all, not pickle ones
            return f"{source.name}: the model files are missing or corrupt (no weights file: no model.safetensors, no .bin)"
        return f"{source.name} has weights only in pickle format (.bin), which can run code when loaded; refused (start with --allow-pickle to permit)"
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in low:
        return f"not enough memory to load {source.name} ({text})"
    if isinstance(exc, (OSError, ValueError, KeyError, SafetensorError)) and source.local:
        return f"{source.name}: the model files are missing or corrupt ({name}: {text[:300]})"
    return f"{source.name} could not be loaded ({name}: {text[:300]})"


def _tokenizer_reads_text(tokenizer: PreTrainedTokenizerBase) -> bool:
    """False for a tokenizer with no vocabulary (plain text encodes to nothing, or only to unknown tokens)."""
    ids = tokenizer("Hello world, 123.", add_special_tokens=False)["input_ids"]
    return bool(tokenizer.decode(ids, skip_special_tokens=True).strip())


def load_config(source: ModelSource) -> PretrainedConfig:
    """The model's config (a small file; no weights), with remote code refused.

    For a GGUF file already converted, the converted folder's config is read
    (reading a GGUF header takes seconds).
    """
    kwargs: dict[str, Any] = {"trust_remote_code": False}
    path = source.path
    if source.gguf_file:
        converted = _converted_gguf(source)
        if converted is not None:
            path = str(converted)
        else:
            kwargs["gguf_file"] = source.gguf_file
    try:
        return AutoConfig.from_pretrained(path, **kwargs)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear message
        raise ModelLoadError(_friendly(exc, source)) from exc


def architecture_of(source: ModelSource) -> Architecture:
    """Detect the architecture from the config only, raising a clear error for anything else."""
    return detect(load_config(source))


CACHE_NOT_WRITABLE = ("the model cache folder {folder} is not writable (PLAYGROUND_CACHE): GGUF files are converted "
                      "into a temporary folder instead, kept while this process runs; set PLAYGROUND_CACHE to a folder "
                      "this user can write to keep conversions across restarts")
_stand_ins: dict[Path, Path] = {}  # an unwritable GGUF_CACHE_DIR -> this process's temporary folder
_stand_ins_lock = threading.Lock()


def _writable(folder: Path) -> bool:
    """Whether files can be made in ``folder`` (made first when missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            return True
    except OSError:
        return False


def gguf_stand_in_folder() -> Path:
    """This process's temporary folder for GGUF conversions when :data:`GGUF_CACHE_DIR` is not writable (the
    pages hide its path like the cache's)."""
    return Path(tempfile.gettempdir()) / f"playground-gguf-{os.getpid()}"


def gguf_conversion_root() -> Path:
    """Where a GGUF file is converted to: :data:`GGUF_CACHE_DIR`, or when that folder cannot be written, a temporary
    folder of this process (removed at exit), said once in the log (:data:`CACHE_NOT_WRITABLE`). Every later
    conversion in this process goes there too, so a load after the first is as fast as from the cache."""
    root = Path(GGUF_CACHE_DIR)
    with _stand_ins_lock:
        if root in _stand_ins:
            return _stand_ins[root]
        if _writable(root):
            return root
        stand_in = gguf_stand_in_folder()
        stand_in.mkdir(mode=0o700, parents=True, exist_ok=True)
        atexit.register(shutil.rmtree, stand_in, ignore_errors=True)
        _stand_ins[root] = stand_in
    log.warning(CACHE_NOT_WRITABLE.format(folder=root))
    return stand_in


def _gguf_cache_folder(source: ModelSource, root: Path | None = None) -> Path:
    file = Path(source.path) / (source.gguf_file or "")
    stat = file.stat()
    # "v2": folders converted before the quantization_config fix (which refused 8-bit) are redone.
    key = hashlib.sha256(f"v2|{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return (GGUF_CACHE_DIR if root is None else root) / f"{file.stem}-{key}"


def _converted_gguf(source: ModelSource) -> Path | None:
    """The folder of an earlier conversion of this GGUF file, if there is one (in the cache, else in this process's
    stand-in for an unwritable cache)."""
    roots = [Path(GGUF_CACHE_DIR)] + ([_stand_ins[Path(GGUF_CACHE_DIR)]] if Path(GGUF_CACHE_DIR) in _stand_ins else [])
    for root in roots:
        try:
            folder = _gguf_cache_folder(source, root)
        except OSError:
            return None
        if (folder / "model.safetensors").is_file() and (folder / "config.json").is_file():
            return folder
    return None


def files_folder(source: ModelSource) -> Path | None:
    """The folder on this machine holding ``source``'s config and tokenizer files, without downloading or
    converting anything: a local folder, a GGUF file's earlier conversion, a hub model's cached snapshot; else ``None``."""
    if source.gguf_file:
        return _converted_gguf(source)
    if source.local:
        return Path(source.path)
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(source.path, "config.json")
    except Exception:  # noqa: BLE001 - a malformed id or cache: nothing here
        return None
    return Path(config).parent if isinstance(config, str) else None


GGUF_STEPS = ("reading the GGUF file's settings", "de-quantizing its weights to float32",
              "reading its tokenizer", "saving it as safetensors")  # what a first conversion does, in order


def gguf_step_status(source: ModelSource, step: int) -> str:
    """The status line of conversion step ``step`` (1-based) of :data:`GGUF_STEPS`: what it does, and why it
    happens once."""
    return (f"Converting the GGUF file {source.gguf_file} to safetensors, once; later starts take about a second "
            f"(step {step} of {len(GGUF_STEPS)}: {GGUF_STEPS[step - 1]})")


def convert_gguf(source: ModelSource, on_status: Callable[[str], None] | None = None) -> Path:
    """Dequantize a GGUF model once into a safetensors folder and return that folder.

    A GGUF-loaded model refuses ``save_pretrained``; a fresh model built from its
    config, given its state dict, saves fine. Later loads read the folder in about a second.
    ``on_status`` hears each step of :data:`GGUF_STEPS` as it starts (:func:`gguf_step_status`).
    """
    folder = _converted_gguf(source)
    if folder is not None:
        return folder
    folder = _gguf_cache_folder(source, gguf_conversion_root())
    status = on_status or (lambda _msg: None)
    status(gguf_step_status(source, 1))
    config = AutoConfig.from_pretrained(source.path, gguf_file=source.gguf_file)
    arch = detect(config)
    auto = AUTO_CLASSES[arch.kind]
    with MODEL_BUILD_LOCK:
        status(gguf_step_status(source, 2))
        gguf_model = auto.from_pretrained(source.path, gguf_file=source.gguf_file, config=config, dtype=torch.float32)
        status(gguf_step_status(source, 3))
        tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
        status(gguf_step_status(source, 4))
        fresh = auto.from_config(gguf_model.config, dtype=torch.float32)
        fresh.load_state_dict(gguf_model.state_dict())
    if hasattr(fresh.config, "quantization_config"):  # the weights are dequantized now; a kept GGUF
        del fresh.config.quantization_config  # quantization_config makes 8-bit (bitsandbytes) loading refuse
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}-{threading.get_ident()}")
    try:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        fresh.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if getattr(fresh, "generation_config", None) is not None:
            fresh.generation_config.save_pretrained(tmp)
    except OSError as exc:  # a full disk: said as such, not as damaged model files
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelLoadError(f"{source.name}: the converted model could not be written to {folder.parent} "
                             f"({type(exc).__name__}: {exc.strerror or exc})") from exc
    if folder.exists():  # another process converted it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.replace(folder)
    return folder


def _hub_commit(source: ModelSource) -> str | None:
    """The commit a hub model's files came from, read from the hub cache it was loaded from (transformers 5
    no longer keeps it on the config); ``None`` for local folders or when it cannot be told."""
    if source.local:
        return None
    from huggingface_hub import try_to_load_from_cache
    from transformers.utils.hub import extract_commit_hash

    try:
        found = try_to_load_from_cache(source.path, "config.json")
    except Exception:  # noqa: BLE001 - a revision that cannot be told is not an error
        return None
    return extract_commit_hash(found, None) if isinstance(found, str) else None


def load_kwargs(config: PretrainedConfig, device: str, *, precision: Precision | str = Precision.AUTO,
                allow_pickle: bool) -> dict[str, Any]:
    """The ``from_pretrained`` arguments: remote code off, the dtype of ``precision`` (:func:`pick_dtype`),
    safetensors only unless pickle is allowed, and for 8-bit a ``BitsAndBytesConfig`` placed by
    ``device_map`` (raises :class:`ModelLoadError` when the precision cannot run here)."""
    kwargs: dict[str, Any] = {"trust_remote_code": False, "dtype": pick_dtype(config, device, precision)}
    if not allow_pickle:
        kwargs["use_safetensors"] = True
    if resolve_precision(precision, config, device) is Precision.INT8:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        kwargs["device_map"] = {"": device if device != "cuda" else 0}
        quiet_bitsandbytes()
    return kwargs


def quiet_bitsandbytes() -> None:
    """Log each bitsandbytes warning once per process, not once per token.

    bitsandbytes logs ``MatMul8bitLt: inputs will be cast …`` on every forward pass of every 8-bit layer: one
    128-token answer wrote it 26,880 times (2.2 MB of log). A filter on its loggers lets each message through once.
    """
    for name in ("bitsandbytes", "bitsandbytes.autograd._functions"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _OncePerMessage) for f in logger.filters):
            logger.addFilter(_OncePerMessage())


class _OncePerMessage(logging.Filter):
    """Passes a log record only the first time its message (with its arguments filled in) is seen."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        with self._lock:
            if text in self._seen:
                return False
            self._seen.add(text)
            return True


def load_model(source: ModelSource, *, precision: Precision | str = Precision.AUTO, load_in_8bit: bool = False,
               allow_pickle: bool = False, device: str | None = None,
               on_status: Callable[[str], None] | None = None) -> LoadedModel:
    """Load ``source`` for generation; every failure is a :class:`ModelLoadError` or
    :class:`UnsupportedModelError` with a readable message.

    Args:
        source: where the model is.
        precision: auto (resolved by :func:`resolve_precision`), float32, bfloat16, float16 (GPU only)
            or 8-bit: linear layers quantized to int8 with bitsandbytes (T5's ``wo`` layers stay in
            full precision through the model's ``_keep_in_fp32_modules``).
        load_in_8bit: the older way to ask for 8-bit (``precision="8-bit"``).
        allow_pickle: accept ``.bin`` (pickle) weights when no safetensors exist.
        device: override the automatic choice (CUDA when present, else CPU).
        on_status: called with short progress messages.
    """
    started = time.perf_counter()
    requested = parse_precision(precision, load_in_8bit or None)
    device = device or pick_device()
    status = on_status or (lambda _msg: None)
    path = source.path
    if source.gguf_file:  # converted first: its config is read from the folder (the GGUF file's header is read once)
        try:
            path = str(convert_gguf(source, status))
            config = AutoConfig.from_pretrained(path)
        except (UnsupportedModelError, ModelLoadError):
            raise
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(_friendly(exc, source)) from exc
        origin_note = f"{source.origin} (converted once to safetensors in {path})"
    else:
        status(f"Reading the config of {source.name}")
        config = load_config(source)
        origin_note = source.origin
    arch = detect(config)  # raises UnsupportedModelError for encoder-only and other models
    resolved = resolve_precision(requested, config, device)
    kwargs = load_kwargs(config, device, precision=resolved, allow_pickle=allow_pickle)
    status(f"Loading weights of {source.name} in {resolved.value}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        if not _tokenizer_reads_text(tokenizer):  # transformers 5 builds an empty tokenizer when its files are missing
            raise ModelLoadError(f"{source.name}: no tokenizer files found (tokenizer.json or vocabulary files), "
                                 "so the model cannot read or write text")
        with MODEL_BUILD_LOCK:
            model = AUTO_CLASSES[arch.kind].from_pretrained(path, **kwargs)
        if not resolved.quantized:
            model.to(device)  # never on a quantized model: its device_map placed it
    except (UnsupportedModelError, ModelLoadError):
        raise
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(_friendly(exc, source)) from exc
    model.eval()
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    description = ModelDescription(
        name=source.name, kind=arch.kind, auto_class=arch.auto_class, resolved_class=type(model).__name__,
        model_type=arch.model_type, params=sum(param.numel() for param in model.parameters()),
        dtype=str(model.dtype).removeprefix("torch."), device=str(model.device), memory_bytes=int(model.get_memory_footprint()),
        quantization="8-bit (bitsandbytes)" if resolved.quantized else "none", origin=origin_note,
        revision=getattr(config, "_commit_hash", None) or _hub_commit(source), load_seconds=time.perf_counter() - started,
        precision=resolved.value, vocabulary=vocabulary_fingerprint(tokenizer),
    )
    return LoadedModel(source, model, tokenizer, arch, description, kwargs, requested)


def vocabulary_fingerprint(tokenizer: Any) -> str | None:
    """A short hash of the tokenizer's token-to-id table (``None`` when it cannot be read)."""
    try:
        vocab = tokenizer.get_vocab()
    except Exception:  # noqa: BLE001 - a tokenizer without a readable table: no fingerprint
        return None
    digest = hashlib.sha256("\n".join(f"{t}\t{i}" for t, i in sorted(vocab.items(), key=lambda kv: kv[1])).encode())
    return digest.hexdigest()[:16]


class ModelCache:
    """Process-wide cache of loaded models, keyed by (model name, precision that runs).

    Shared by every user: a model is loaded once, two simultaneous requests for the
    same model wait on one load, and the least recently used model is evicted when
    more than ``max_models`` are loaded. A request for ``auto`` finds the model under the
    precision auto resolved to (after its first load), so "auto" and "bfloat16" share one copy
    where auto means bfloat16.

    Args:
        max_models (int, default 4): how many models stay loaded at once.
        allow_pickle (bool, default False): passed to :func:`load_model`.
        loader: the function that loads (tests may count calls).
    """

    def __init__(self, max_models: int = 4, *, allow_pickle: bool = False,
                 loader: Callable[..., LoadedModel] = load_model) -> None:
        if max_models < 1:
            raise ValueError("max_models must be at least 1")
        self.max_models = max_models
        self.allow_pickle = allow_pickle
        self._loader = loader
        self._models: OrderedDict[tuple[str, Precision], LoadedModel] = OrderedDict()
        self._key_locks: dict[str, threading.Lock] = {}
        self._resolved: dict[tuple[str, Precision], Precision] = {}  # (name, requested) -> the precision it ran in
        self._status: dict[str, str] = {}  # model name -> the last status line of its load in progress
        self._listeners: dict[str, list[Callable[[str], None]]] = {}  # model name -> who waits on that load
        self._lock = threading.Lock()
        self.loads = 0  # how many real loads happened (for tests and the benchmark)

    def _key(self, name: str, precision: Precision | str | bool, load_in_8bit: bool | None = None) -> tuple[str, Precision]:
        """The cache key of a request (call with ``_lock`` held): auto maps to what it resolved to, once known."""
        requested = parse_precision(precision, load_in_8bit)
        return name, self._resolved.get((name, requested), requested)

    def peek(self, name: str, precision: Precision | str | bool = Precision.AUTO) -> LoadedModel | None:
        """The loaded model if it is in the cache, without loading it (``precision`` as for :meth:`get`)."""
        with self._lock:
            return self._models.get(self._key(name, precision))

    def put(self, loaded: LoadedModel, precision: Precision | str | bool | None = None) -> None:
        """Insert an already loaded model under the precision it runs in (its description's, else ``precision``),
        evicting the least recently used beyond the bound; a request for the precision it was loaded with
        (``loaded.requested``, e.g. auto) finds it too."""
        description = getattr(loaded, "description", None)
        ran = getattr(description, "precision", None) or (precision if precision is not None else Precision.AUTO)
        key = (loaded.source.name, parse_precision(ran))
        requested = getattr(loaded, "requested", None)
        with self._lock:
            if requested is not None:
                self._resolved[(loaded.source.name, Precision(requested))] = key[1]
            self._models[key] = loaded
            self._models.move_to_end(key)
            while len(self._models) > self.max_models:
                evicted, _ = self._models.popitem(last=False)
                log.info("evicted %s from the model cache", evicted)

    def get(self, source: ModelSource, precision: Precision | str | bool = Precision.AUTO,
            on_status: Callable[[str], None] | None = None, *, load_in_8bit: bool | None = None) -> LoadedModel:
        """The loaded model for ``source`` in ``precision`` (auto, float32, bfloat16, float16, 8-bit; ``True``
        or ``load_in_8bit=True`` mean 8-bit), loading it at most once across threads."""
        requested = parse_precision(precision, load_in_8bit)  # the cache's callers (benchmark, tests) may pass text
        with self._lock:
            key = self._key(source.name, requested)
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            # one lock per model, not per requested precision: "auto" and what it resolves to are one cache entry
            key_lock = self._key_locks.setdefault(source.name, threading.Lock())
        with self._listening(source.name, on_status), key_lock:
            with self._lock:
                key = self._key(source.name, requested)
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key]
            try:
                loaded = self._loader(source, precision=requested, allow_pickle=self.allow_pickle,
                                      on_status=functools.partial(self._tell, source.name))
            finally:
                with self._lock:
                    self._status.pop(source.name, None)
            ran = getattr(getattr(loaded, "description", None), "precision", None)
            with self._lock:
                self.loads += 1
                if ran is not None:
                    ran_key = (source.name, Precision(ran))
                    self._resolved[(source.name, requested)] = ran_key[1]
                    held = self._models.get(ran_key)
                    if held is not None:  # loaded under another name (e.g. bfloat16, then auto): keep one copy
                        self._models.move_to_end(ran_key)
                        return held
            self.put(loaded, requested)
            return loaded

    @contextlib.contextmanager
    def _listening(self, name: str, on_status: Callable[[str], None] | None) -> Iterator[None]:
        """While ``name`` loads, ``on_status`` hears its status lines, whichever request started the load (a
        visitor who clicks while the start-up preload converts a GGUF file sees what it does), the last one at once."""
        if on_status is None:
            yield
            return
        with self._lock:
            self._listeners.setdefault(name, []).append(on_status)
            current = self._status.get(name)
        if current is not None:
            on_status(current)
        try:
            yield
        finally:
            with self._lock:
                listeners = self._listeners.get(name, [])
                if on_status in listeners:
                    listeners.remove(on_status)
                if not listeners:
                    self._listeners.pop(name, None)

    def _tell(self, name: str, status: str) -> None:
        """A status line of ``name``'s load in progress, for everyone waiting on it."""
        with self._lock:
            self._status[name] = status
            listeners = list(self._listeners.get(name, ()))
        for listener in listeners:
            try:
                listener(status)
            except Exception:  # noqa: BLE001 - a listener that fails never stops the load
                log.exception("a load status listener failed")

    def clear(self) -> None:
        """Forget every loaded model."""
        with self._lock:
            self._models.clear()
            self._resolved.clear()

    def __len__(self) -> int:
        return len(self._models)

    def __bool__(self) -> bool:  # an empty cache is still a cache (``cache or default`` must keep it)
        return True
