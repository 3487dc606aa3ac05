"""Shared test set-up: offline, hermetic, and tiny models built once per session.

Everything here runs without the network: the Hugging Face hub is switched off
before transformers or huggingface_hub are imported, and the playground's own
cache (GGUF conversions) goes to a temporary folder.

Fixtures (all session-scoped, reusable by model, app and browser tests):

``tiny_dir``
    A folder holding five tiny random models, each in its own sub-folder named
    after the model (see :data:`TINY_MODELS`): ``tiny-t5``, ``tiny-bart``,
    ``tiny-gpt2``, ``tiny-llama`` (all built with ``never_stop=True``, so they
    always generate exactly ``max_new_tokens`` tokens and finish with
    ``"length"``), and ``tiny-gpt2-eos`` (a GPT-2 that may emit its end-of-sequence
    token, so ``"eos"`` endings can be tested). They load and generate in
    milliseconds; their text is random words.
``registry``
    A :class:`models.ModelRegistry` with every tiny model registered under its
    folder name, ``online=False`` (presets are "not cached" offline) and custom
    hub ids allowed (the default).
``cache``
    A :class:`models.ModelCache` large enough to keep every tiny model (and its
    8-bit variant) loaded, so tests share one load per model. Tests that patch a
    model taken from it must restore it (``monkeypatch`` or ``try/finally``), or
    load a private copy with ``models.load_model(source)`` instead.
``load_tiny``
    ``load_tiny("tiny-gpt2")`` -> the cached :class:`models.LoadedModel`
    (``load_tiny(name, load_in_8bit=True)`` for the 8-bit variant, ``precision="float32"`` for another
    precision; the default is the app's: ``auto``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

# --- must run before anything imports transformers / huggingface_hub ------------------------
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
_PLAYGROUND_CACHE = tempfile.mkdtemp(prefix="playground-test-cache-")
os.environ["PLAYGROUND_CACHE"] = _PLAYGROUND_CACHE
# the data folder (the votes database and its key) of every app a test starts: never the user's own
os.environ["PLAYGROUND_DATA"] = os.path.join(_PLAYGROUND_CACHE, "data")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# ---------------------------------------------------------------------------------------------

import pytest  # noqa: E402

try:  # hypothesis: no timing deadlines (2 slow cores), no example database written into the repo
    from hypothesis import HealthCheck, settings as hypothesis_settings

    hypothesis_settings.register_profile(
        "playground", deadline=None, database=None, max_examples=100,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "playground"))
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass

#: name -> (architecture for ``build_tiny``, ``never_stop``)
TINY_MODELS: dict[str, tuple[str, bool]] = {
    "tiny-t5": ("t5", True),
    "tiny-bart": ("bart", True),
    "tiny-gpt2": ("gpt2", True),
    "tiny-llama": ("llama", True),
    "tiny-gpt2-eos": ("gpt2", False),
}
SEQ2SEQ_TINY = ("tiny-t5", "tiny-bart")
CAUSAL_TINY = ("tiny-gpt2", "tiny-llama")


def pytest_configure(config: pytest.Config) -> None:
    # Noise from bitsandbytes on CPU; not failures. (Its "MatMul8bitLt: inputs will be cast" is a log message,
    # which models.loader.quiet_bitsandbytes lets through once, not a warning.)
    for line in (
        "ignore::DeprecationWarning:bitsandbytes.*",
    ):
        config.addinivalue_line("filterwarnings", line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_PLAYGROUND_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder with the five tiny models of :data:`TINY_MODELS`, one sub-folder each (built once, ~1 s)."""
    from models.tiny import build_tiny

    root = tmp_path_factory.mktemp("tiny-models")
    for name, (arch, never_stop) in TINY_MODELS.items():
        build_tiny(arch, root / name, never_stop=never_stop)
    return root


@pytest.fixture(scope="session")
def registry(tiny_dir: Path):
    """Offline :class:`models.ModelRegistry` with every tiny model registered by folder name."""
    from models import ModelRegistry

    reg = ModelRegistry(online=False)
    reg.register_dir(tiny_dir)
    return reg


@pytest.fixture(scope="session")
def cache():
    """Shared :class:`models.ModelCache` (room for every tiny model in full and 8-bit precision)."""
    from models import ModelCache

    return ModelCache(max_models=3 * len(TINY_MODELS))  # auto, float32 and 8-bit


@pytest.fixture(scope="session")
def load_tiny(registry, cache):
    """``load_tiny(name, load_in_8bit=False, precision="auto")`` -> the shared cached :class:`models.LoadedModel`."""

    def load(name: str, load_in_8bit: bool = False, precision: str = "auto"):
        return cache.get(registry.resolve(name), precision, load_in_8bit=load_in_8bit or None)

    return load


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL of the session's own (Debian's, as the ``postgres`` user, on a loopback port in a
    temporary folder); tests take a fresh database each with ``pg_server.new_database()``, and may stop and
    start it. Skipped where PostgreSQL is not installed."""
    from tests.pgserver import PostgresServer

    server = PostgresServer.find()
    if server is None:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql)")
    server.start()
    yield server
    server.destroy()
