"""PySide6 widgets and the one bridge that turns core events into Qt signals. Imports no torch."""
