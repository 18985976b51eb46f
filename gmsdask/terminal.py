"""The console the command-line tools print to."""

from __future__ import annotations

from rich.console import Console

__all__ = ["console"]


def console() -> Console:
    """A console on the current standard output, as wide as the terminal (or ``$COLUMNS``) is now.

    One per use, not one per process: a console made at import keeps the width of that moment, so a later
    ``COLUMNS`` (or a test runner's captured output) would not be seen.
    """
    return Console()
