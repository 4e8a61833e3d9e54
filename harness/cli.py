"""Command line: argument parsing and exit codes only. Each sub-command is a module in
`harness/commands/` with NAME, HELP, ORDER, add_parser(subparsers) and run(args) -> int."""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import pkgutil
import signal
import sys

from harness import __version__, commands
from harness.errors import ExitCode, HarnessError
from harness.evidence import COMMITTED

EPILOG = """exit codes: 0 ok/PASS · 1 checks failed (validate.txt FAIL) · 2 bad command line ·
3 spec or input invalid (nothing written) · 4 provider/infrastructure error · 5 verify/diff mismatch ·
6 --execute but no cell executed (e.g. no API key; validate.txt FAIL), or diff --tolerance compared nothing ·
70 internal error · 130 interrupted
run: of several failures the most serious gives the code, in the order 4, 5, 1, 6 (see run --fail-on)"""


def _module_names() -> list[str]:
    return [m.name for m in pkgutil.iter_modules(commands.__path__)]


def _command_word(argv: list[str] | None) -> str | None:
    """The first word that is not an option: the command argv names, if any."""
    return next((a for a in argv or () if not a.startswith("-")), None)


def _command_modules(argv: list[str] | None = None):
    """The command modules the parser needs: only the one `argv` names (importing the other ten
    and what they import cost a one-shot `harness prepare` most of its start-up), else all of them
    (`harness --help`, a mistyped command: the list of commands is wanted then)."""
    names = _module_names()
    word = _command_word(argv)
    if word in names:
        module = importlib.import_module(f"harness.commands.{word}")
        if getattr(module, "NAME", None) == word and hasattr(module, "add_parser"):
            return [module]
    mods = [importlib.import_module(f"harness.commands.{name}") for name in names]
    return sorted((m for m in mods if hasattr(m, "add_parser")), key=lambda m: (getattr(m, "ORDER", 50), m.NAME))


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser; given `argv`, only the command it names is set up."""
    parser = argparse.ArgumentParser(
        prog="harness", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Reproducibility harness for DashScope multimodal embeddings: "
                    "spec → checked plan → exact request payloads → (optional) execution → evidence.")
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules(argv):
        p = module.add_parser(sub)
        p.set_defaults(func=module.run)
    return parser


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def interrupted_message(cached: bool = True) -> str:
    """What the interrupt left behind, truthfully: a run folder swapped in before it counts, and
    the cache only when the command kept one (not under --no-cache)."""
    if not COMMITTED:
        if not cached:
            return ("interrupted: no output folder was changed; with --no-cache no response was kept, "
                    "so running the same command again sends every request again")
        return ("interrupted: no output folder was changed; responses already received are in the cache, "
                "so running the same command again finishes the job")
    done = "; ".join(f"{path} was written in full{' (replacing the earlier run there)' if replaced else ''}"
                     for path, replaced in COMMITTED)
    return f"interrupted after the run was complete: {done}"


def unknown_command(argv: list[str]) -> str | None:
    """The message for a mistyped command (`valdate`), with the nearest command; None when the
    first word names a command (or there is none: argparse then says what is missing)."""
    word = _command_word(argv)
    if word is None or word in _module_names():   # known without importing the other commands
        return None
    names = [m.NAME for m in _command_modules()]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else "see `harness --help`"
    return f"harness: unknown command {word!r}: {hint} (commands: {', '.join(names)})"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if message := unknown_command(argv):
        print(message, file=sys.stderr)
        return int(ExitCode.USAGE)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    COMMITTED.clear()          # one command's record (main may run more than once in a process)
    try:
        return int(args.func(args))
    except HarnessError as e:
        for problem in e.problems:
            print(problem.render(), file=sys.stderr)
        errors = sum(1 for p in e.problems if p.is_error)
        if errors > 1:
            print(f"{errors} errors", file=sys.stderr)
        return int(e.exit_code)
    except KeyboardInterrupt:
        print(interrupted_message(cached=not getattr(args, "no_cache", False)), file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.OK)
    except Exception as e:  # a bug: say so plainly; the traceback only on request
        if os.environ.get("HARNESS_DEBUG"):
            raise
        print(f"internal error ({type(e).__name__}): {e}\nthis is a bug in the harness; "
              f"run again with HARNESS_DEBUG=1 for the traceback and report it", file=sys.stderr)
        return int(ExitCode.INTERNAL)
