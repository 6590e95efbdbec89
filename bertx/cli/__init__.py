"""The `bertx` command: thin typer wrappers that parse options and call importable functions.

    base.py    the app, shared flags, one-line errors        train.py   commands that train
    use.py     commands that use a trained model             tools.py   rank, tune, tokenizer, vocab
    options.py options derived from the config schemas: typed values set on their fields

A `BertxError` (bad data, config, model or output folder) prints one line and exits with status 2;
no traceback is shown for the user's mistakes.
"""

from __future__ import annotations

import signal
import sys
import threading

import typer

# Importing a module registers its commands; `bertx --help` lists them in this order.
from bertx.cli import train  # noqa: F401, I001
from bertx.cli import use  # noqa: F401
from bertx.cli import tools  # noqa: F401
from bertx.cli.base import app
from bertx.errors import Terminated

__all__ = ["app", "entry", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the `bertx` command; every error the user can fix is one line on stderr, exit code 2.

    Click's own usage errors (an unknown option, a value of the wrong type) are printed the same way,
    instead of a usage box, so scripts and people see one line whatever was wrong."""
    try:  # typer 0.2x carries its own copy of click
        from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    command = typer.main.get_command(app)
    problem = _undecodable(sys.argv[1:] if argv is None else argv)
    if problem:
        typer.secho(f"error: {problem}", fg="red", err=True)
        return 2
    previous = _raise_on_sigterm()
    try:
        result = command.main(args=argv, prog_name="bertx", standalone_mode=False)
    except NoArgsIsHelpError as err:  # `bertx` or `bertx tokenizer` alone: the help, as usual
        typer.echo(err.ctx.get_help())
        return 0
    except UsageError as err:
        where = f" (see bertx {err.ctx.info_name} --help)" if err.ctx is not None and err.ctx.info_name != "bertx" else ""
        typer.secho(f"error: {err.format_message()}{where}", fg="red", err=True)
        return 2
    except typer.Abort:
        typer.secho("interrupted", err=True)
        return 130
    except ClickException as err:
        typer.secho(f"error: {err.format_message()}", fg="red", err=True)
        return err.exit_code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return result if isinstance(result, int) else 0


def _undecodable(args: list[str]) -> str | None:
    """Python turns command-line bytes that are not UTF-8 into lone surrogates; the tokenizer, ONNX and
    YAML libraries cannot write such paths or texts, so they are refused here, once, for every command."""
    for number, arg in enumerate(args, start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError as err:
            shown = arg.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
            return f"argument {number} ({shown!r}) is not valid UTF-8 (character {err.start}); bertx takes paths and texts in UTF-8"
    return None


def _raise_on_sigterm():
    """SIGTERM becomes an exception (`Terminated`) so that cleanup runs; a training run installs its own
    handler (checkpoint, then stop) while it trains. Returns the handler to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise Terminated()

    return signal.signal(signal.SIGTERM, stop)


def entry() -> None:  # pragma: no cover - the console script
    sys.exit(main())
