"""The one place that imports llama-cpp-python and prepares the llama.cpp runtime.

llama.cpp writes its own log to stderr; a CLI that promises one clear line on errors and
a GUI whose logs never hold user code cannot have that. Its messages are routed to the
``starpad.llama`` logger at DEBUG, and the last error lines are kept so that a failed
load can say *why* in the exception.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import threading
from pathlib import Path

import llama_cpp

log = logging.getLogger("starpad.llama")

_recent_errors: collections.deque[str] = collections.deque(maxlen=8)
_partial_line: list[str] = []
_init_lock = threading.Lock()
_initialised = False

_GGML_LOG_ERROR = 3
_GGML_LOG_CONT = 5


@llama_cpp.llama_log_callback
def _route_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    message = text.decode("utf-8", errors="replace")
    _partial_line.append(message)
    if not message.endswith("\n"):
        return
    line = "".join(_partial_line).rstrip()
    _partial_line.clear()
    if level == _GGML_LOG_ERROR:
        _recent_errors.append(line)
    log.debug("%s", line)


def ensure_initialised() -> None:
    """Initialise llama.cpp's backends once per process and take over its log."""
    global _initialised
    with _init_lock:
        if _initialised:
            return
        llama_cpp.llama_log_set(_route_log, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _load_dynamic_backends()
        _initialised = True


def _load_dynamic_backends() -> None:
    """Load backend plugins when llama.cpp was built with GGML_BACKEND_DL.

    The portable release build ships one CPU backend per instruction-set level
    (GGML_CPU_ALL_VARIANTS) as plugins next to libggml, and ggml picks the best one for
    the CPU it runs on. Nothing registers them until asked; a regular build has its CPU
    backend linked in and reports it already.
    """
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    # Open the file libllama links against (its SONAME, libggml.so.0): a wheel ships
    # libggml.so as a separate *copy*, and registering plugins in that second instance of
    # ggml would leave llama.cpp's own registry empty ("no backends are loaded").
    candidates = (
        sorted(p for p in lib_dir.glob("libggml.so.*") if p.name.count(".") == 2)
        + sorted(lib_dir.glob("libggml.so*"))
        + sorted(lib_dir.glob("libggml.*dylib"))
        + sorted(lib_dir.glob("ggml.dll"))
    )
    if not candidates:
        return
    ggml = ctypes.CDLL(str(candidates[0]))
    ggml.ggml_backend_reg_count.restype = ctypes.c_size_t
    ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
    # The bundle keeps the plugins beside the libraries; a pip-installed portable build
    # puts them in site-packages/bin/, next to the llama_cpp package.
    for plugin_dir in (lib_dir, lib_dir.parent.parent / "bin"):
        if ggml.ggml_backend_reg_count() > 0:
            break
        if any(plugin_dir.glob("*ggml-cpu*")):
            ggml.ggml_backend_load_all_from_path(str(plugin_dir).encode())
            log.info("loaded %d ggml backend plugin(s) from %s", ggml.ggml_backend_reg_count(), plugin_dir)


def take_recent_errors() -> str:
    """The llama.cpp error lines since the last call, joined; empties the buffer."""
    text = "; ".join(_recent_errors)
    _recent_errors.clear()
    return text

