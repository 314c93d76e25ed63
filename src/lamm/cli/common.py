"""Small helpers shared by CLI modules: the console and turning library errors into exit codes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Print expected errors (bad file, bad config) as one red line and exit 2, without a traceback."""
    from lamm.config import ConfigError
    from lamm.fileio import FileFormatError
    from lamm.media import MediaError

    handled = (ConfigError, FileFormatError, MediaError, FileNotFoundError, KeyError) + kinds
    try:
        yield
    except handled as e:
        from rich.markup import escape

        msg = str(e)
        if isinstance(e, KeyError) and e.args:
            # our KeyErrors carry a sentence ("unknown recipe 'x' (known: ...)"); a bare key is a missing field
            arg = e.args[0]
            msg = arg if isinstance(arg, str) and " " in arg else f"missing key {arg!r}"
        # messages quote boxes and paths ("[x1, y1, x2, y2]", "[/img]"): never read them as rich markup
        err_console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False)
        raise typer.Exit(2) from None


def require_extra(command: str, extra: str, *modules: str) -> None:
    """Exit with one red line when a module of an optional extra (``pip install 'lamm[EXTRA]'``) is not
    installed: ``make quickstart`` installs the core package only."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        from rich.markup import escape

        msg = (f"{command} needs {', '.join(missing)} (the {extra!r} extra): pip install -e '.[{extra}]' in the "
               "repository, or make setup")
        err_console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False)
        raise typer.Exit(2)
