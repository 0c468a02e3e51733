"""``stablenew-qt``: the command line, one module per command.

``run``, ``plan``, ``info``, ``models``, ``convert``, ``queue`` and ``bench`` each live in their own
module and register themselves in :func:`build_parser`; ``run``, ``queue run`` and ``bench`` open
the same EngineSession the window does (``core/session.py``). Importing this package loads
neither torch nor Qt: the engine is imported when a command needs it.
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
