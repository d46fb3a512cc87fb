"""The ``gai-meta`` command line: a thin layer of option parsing over the library.

Importing this module must not import torch: ``gai-meta --help`` stays fast. Every command
module registers itself on :data:`app`; each command body is a few lines that parse options and
call a library function. Errors become one line on stderr and an exit code (see
:mod:`gai_meta.errors`); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from gai_meta import __version__
from gai_meta.errors import GaiMetaError

__all__ = ["app", "command", "main"]

app = typer.Typer(
    name="gai-meta",
    help="Introspect PyTorch models and experiments and write their metadata as JSON.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state = {"debug": False}

F = TypeVar("F", bound=Callable[..., Any])


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gai-meta {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Introspect PyTorch models and experiments and write their metadata as JSON."""
    _state["debug"] = debug


def is_debug() -> bool:
    return _state["debug"]


def fail(err: GaiMetaError) -> typer.Exit:
    """Print ``err`` as one line on stderr and return the Exit to raise."""
    typer.echo(f"gai-meta: error: {err}", err=True)
    return typer.Exit(err.exit_code)


def command(name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """Register a command whose GaiMetaErrors become one stderr line and an exit code."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            try:
                return fn(*args, **kw)
            except GaiMetaError as err:
                if _state["debug"]:
                    raise
                raise fail(err) from None
            except KeyboardInterrupt:
                typer.echo("gai-meta: interrupted", err=True)
                raise typer.Exit(130) from None
            except (typer.Exit, typer.Abort, SystemExit):
                raise
            except Exception as err:  # a bug in gai-meta or in user model code
                if _state["debug"]:
                    raise
                msg = " ".join(f"{type(err).__name__}: {err}".split())
                typer.echo(
                    f"gai-meta: error: unexpected {msg} (rerun with --debug for the traceback)",
                    err=True,
                )
                raise typer.Exit(2) from None

        app.command(name, **kwargs)(wrapper)
        return fn

    return decorate


def main() -> None:
    """Console-script entry point."""
    import warnings

    # torch warns on import where NumPy is not installed; gai-meta never needs NumPy.
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    import sys

    from gai_meta.cli._fastcheck import answer

    # An unchanged `gai-meta check` is answered before Typer (and pydantic) load.
    code = answer(sys.argv[1:])
    if code is not None:
        raise SystemExit(code)
    app(prog_name="gai-meta")


# Command modules register themselves on ``app``; they import torch only inside their bodies.
from gai_meta.cli import commands  # noqa: E402, F401

if __name__ == "__main__":  # pragma: no cover
    main()
