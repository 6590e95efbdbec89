"""What every `bertx` command shares: the typer app, the resume/overwrite flags, and the wrapper that
turns a user's mistake into one line (exit code 2) instead of a traceback."""

from __future__ import annotations

from functools import wraps

import typer

from bertx.errors import BertxError, RunStopped, Terminated

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="BERT knowledge transfer: pretrain, fine-tune, multi-task, distil, evaluate, predict."
)

# The same two flags on every training command.
RESUME = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint.")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace the bertx run in --output (never another folder).")


def friendly(fn):
    """Turn user-input errors and Ctrl-C into one clear line instead of a traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BertxError as err:
            typer.secho(f"error: {err}", fg="red", err=True)
            raise typer.Exit(2) from None
        except RunStopped as stop:
            typer.secho(f"{stop} ({stop.output})", err=True)
            raise typer.Exit(stop.exit_code) from None
        except KeyboardInterrupt:
            typer.secho("interrupted; a run continues from its last checkpoint with --resume", err=True)
            raise typer.Exit(130) from None
        except Terminated:
            typer.secho("stopped by SIGTERM; nothing half-written was left behind", err=True)
            raise typer.Exit(Terminated.exit_code) from None

    return wrapper
