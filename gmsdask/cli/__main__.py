"""``python -m gmsdask.cli``: the ``gmsdask`` command."""

from . import app

if __name__ == "__main__":
    app()
