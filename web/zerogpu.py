"""ZeroGPU support: the functions that generate carry ``@spaces.GPU`` with a duration that fits the request.

On a ZeroGPU Space (``SPACES_ZERO_GPU`` set, the ``spaces`` package installed there) the decorator
runs the function on a GPU for at most the given seconds. Elsewhere ``spaces.GPU`` returns the function
unchanged, and without the ``spaces`` package nothing is imported at all: the app runs as it is.
"""

from __future__ import annotations

import importlib.util
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)

LOAD_SECONDS = 30  # room for loading a model onto the GPU on a request's first use
SECONDS_PER_TOKEN = 0.1  # generous for the presets on a ZeroGPU slice
MAX_SECONDS = 120  # ZeroGPU's longest lease for a free Space


def gpu_seconds(max_new_tokens: object) -> int:
    """The GPU lease a request needs: loading plus its tokens, capped at ZeroGPU's limit."""
    try:
        tokens = max(1, int(max_new_tokens))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        tokens = 512
    return min(MAX_SECONDS, int(LOAD_SECONDS + tokens * SECONDS_PER_TOKEN))


def on_gpu(fn: F, duration: Callable[..., int]) -> F:
    """``fn`` decorated with ``spaces.GPU(duration=duration)`` when the ``spaces`` package is installed.

    ``duration`` is called with ``fn``'s arguments (ZeroGPU's dynamic duration). The function is also
    marked with ``zerogpu_duration`` so that a test can tell it carries the decorator on any machine.
    """
    fn.zerogpu_duration = duration  # type: ignore[attr-defined]
    if importlib.util.find_spec("spaces") is None:
        return fn
    import spaces

    decorated = spaces.GPU(duration=duration)(fn)
    if decorated is not fn:
        decorated.zerogpu_duration = duration  # type: ignore[attr-defined]
    return decorated
