"""Entry point: a verb runs the headless CLI, a file (or nothing) opens the window.

The first argument decides, so a typo never opens a window nobody asked for:

* a verb (``complete``, ``fit``…), ``-h``/``--help``/``--version``: the command line;
* ``--self-test MODEL``: the packaged app's self-test;
* an option (``--model M``, ``-v``) or nothing: the window;
* a path — one that exists, or that has a folder separator or a file extension
  (``notes.py``, ``./TODO``): the window, with that file;
* anything else (``complet``): an unknown command, with the nearest verbs, exit 2.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

EXIT_USER_ERROR = 2
_VERBOSE = ("-v", "--verbose")


def looks_like_a_path(arg: str) -> bool:
    """True when ``arg`` can only mean a file: it exists, or is written like a path."""
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    if any(sep in arg for sep in separators):
        return True
    if Path(arg).suffix:
        return True
    try:
        return Path(arg).exists()
    except (OSError, ValueError):  # e.g. a name too long, or a NUL byte
        return False


def unknown_command_message(arg: str, verbs: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(arg, verbs, n=3, cutoff=0.5)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return (
        f"starpad: error: unknown command {arg!r}{hint}; commands: {', '.join(verbs)}; "
        f"to open a new file named {arg}, write ./{arg}"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from app import cli

    # `starpad -v complete …`: -v belongs to both the window and the CLI.
    first = next((a for a in argv if a not in _VERBOSE), None)
    if argv and (argv[0] in cli.VERBS or argv[0] in ("-h", "--help", "--version")):
        return cli.run(argv)
    if first is not None and first in cli.VERBS and argv[0] in _VERBOSE:
        return cli.run(argv)
    if argv and argv[0] == "--self-test":
        if len(argv) != 2:
            print("usage: starpad --self-test MODEL.gguf", file=sys.stderr)
            return EXIT_USER_ERROR
        from app.selftest import run_self_test

        return run_self_test(argv[1])
    if first is not None and not first.startswith("-") and not looks_like_a_path(first):
        print(unknown_command_message(first, cli.VERBS), file=sys.stderr)
        return EXIT_USER_ERROR
    from app.gui.application import run_gui

    return run_gui(argv)


if __name__ == "__main__":
    raise SystemExit(main())
