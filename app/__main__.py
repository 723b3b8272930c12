"""Entry point: a verb runs the headless CLI, no verb opens the window."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from app import cli

    if argv and (argv[0] in cli.VERBS or argv[0] in ("-h", "--help", "--version")):
        return cli.run(argv)
    if argv and argv[0] == "--self-test":
        if len(argv) != 2:
            print("usage: starpad --self-test MODEL.gguf", file=sys.stderr)
            return 2
        from app.selftest import run_self_test

        return run_self_test(argv[1])
    from app.gui.application import run_gui

    return run_gui(argv)


if __name__ == "__main__":
    raise SystemExit(main())
