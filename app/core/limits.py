"""The numeric limits every entry point (CLI options, settings, the engine) agrees on.

Declared once so a value the settings accept is one the engine accepts, and a value the
engine refuses is refused by the CLI with the same bounds in its message.
"""

from __future__ import annotations

#: The smallest context Starpad runs with. llama.cpp itself pads any context to a
#: multiple of 256, but below 64 requested tokens a FIM prompt (3 control tokens, a few
#: lines each side, room to generate) is too small to be worth a completion: a value
#: below it is almost always a typo (``--n-ctx 16`` for 16K), so it is an error.
MIN_N_CTX = 64

#: The largest context a setting may ask for. The real bound is the model's trained
#: context, checked at load; this one only keeps a damaged settings file from asking
#: llama.cpp for a KV cache of 2**40 tokens.
MAX_N_CTX = 1 << 20

#: ggml's ``GGML_MAX_N_THREADS``: its thread pool has fixed arrays of this many entries,
#: and ``--threads 100000`` made llama.cpp crash (SIGSEGV) rather than refuse.
MAX_THREADS = 512

#: Longest completion anyone asks for in one go (also the preferences spin box's maximum).
MAX_NEW_TOKENS = 4096

#: Sampling temperature beyond which the output is noise; 0 means greedy.
MAX_TEMPERATURE = 5.0
