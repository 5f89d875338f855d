"""The `dvis` command: a Typer app whose command groups live one module each beside this file."""
from __future__ import annotations

import sys

import typer

from dvis_cli import __version__
from dvis_cli.cli import data_cmd, eval_cmd, info_cmd, ops_cmd, render_cmd, segment_cmd, train_cmd, weights_cmd
from dvis_cli.cli.common import console_err
from dvis_cli.errors import DvisError

app = typer.Typer(
    name="dvis",
    help="DVIS video instance / panoptic segmentation: segment, track, refine, export, train, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dvis {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """DVIS: Decoupled Video Instance Segmentation (Zhang et al., ICCV 2023)."""


for _module in (segment_cmd, render_cmd, info_cmd, weights_cmd, eval_cmd, data_cmd, ops_cmd, train_cmd):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors end in one line and exit code 2, never a traceback."""
    try:
        app(args=argv, standalone_mode=False)
    except DvisError as exc:
        console_err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # full disk, permission denied, ...: the system's reason, one line
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        console_err.print(f"[bold red]error:[/] {exc.strerror or exc}{where}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console_err.print("[bold red]interrupted[/]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console_err.print("[bold red]aborted[/]")
        sys.exit(1)
    except Exception as exc:
        if _is_usage_error(exc):  # a bad option or argument: click's usage message, exit 2
            exc.show()
            sys.exit(exc.exit_code)
        raise


def _is_usage_error(exc: BaseException) -> bool:
    """Click's errors, whether from click itself or the copy typer vendors (typer._click)."""
    module = type(exc).__module__
    return (module.startswith("click.") or module.startswith("typer._click")) and hasattr(exc, "show")


if __name__ == "__main__":
    main()
