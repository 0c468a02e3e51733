"""WeightKeyFilter: Ctrl+Up / Ctrl+Down in a prompt box raise or lower a weight, as in A1111.

The edit itself is :func:`stablenew_qt.core.prompt_edit.edit_attention`; this filter feeds it the
box's text and selection and applies the result. Like A1111 it takes the key with Ctrl or with
Meta (Cmd on macOS), whatever other modifiers are held, and always consumes it (Ctrl+Up/Down do
not also move the cursor). The changed characters are replaced in one edit block, so one key
press is one undo step and the rest of the document (and its undo history) is untouched; the
selection then covers the edited text, as A1111 leaves it. Qt counts positions in UTF-16 units,
the core function in code points: the filter converts both ways.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit

from ..core.prompt_edit import WeightKeys, edit_attention

_DIRECTIONS = {Qt.Key.Key_Up: 1, Qt.Key.Key_Down: -1}
_COMMAND = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.MetaModifier


class WeightKeyFilter(QObject):
    """Installs itself on ``edit`` (a child of it, so it lives as long as the box)."""

    def __init__(self, edit: QPlainTextEdit | QTextEdit, keys: WeightKeys | None = None) -> None:
        super().__init__(edit)
        self.setObjectName(f"{edit.objectName()}.weight_keys")
        self.edit = edit
        self.keys = keys or WeightKeys()
        edit.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if watched is self.edit and kind in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride):
            assert isinstance(event, QKeyEvent)
            direction = _direction(event)
            if direction and not self.edit.isReadOnly():
                if kind == QEvent.Type.ShortcutOverride:
                    event.accept()  # the key comes to the box even if a window shortcut uses it
                else:
                    self.press(direction)
                return True
        return super().eventFilter(watched, event)

    def press(self, direction: int) -> None:
        """One Ctrl+Up (``direction`` 1) or Ctrl+Down (-1) on the box's text and selection."""
        text = self.edit.toPlainText()
        cursor = self.edit.textCursor()
        start = _index(text, cursor.selectionStart())
        end = _index(text, cursor.selectionEnd())
        result = edit_attention(text, start, end, direction, self.keys)
        if result.text != text:
            _replace_changed_span(self.edit, text, result.text)
        selection = QTextCursor(self.edit.document())
        selection.setPosition(_units(result.text, result.start))
        selection.setPosition(_units(result.text, result.end), QTextCursor.MoveMode.KeepAnchor)
        self.edit.setTextCursor(selection)


def _direction(event: QKeyEvent) -> int:
    if not event.modifiers() & _COMMAND:
        return 0
    return _DIRECTIONS.get(Qt.Key(event.key()), 0)


def _replace_changed_span(edit: QPlainTextEdit | QTextEdit, old: str, new: str) -> None:
    """Replace only what differs between ``old`` and ``new`` (their common ends stay), as one undo step."""
    prefix = 0
    limit = min(len(old), len(new))
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    cursor = QTextCursor(edit.document())
    cursor.beginEditBlock()
    cursor.setPosition(_units(old, prefix))
    cursor.setPosition(_units(old, len(old) - suffix), QTextCursor.MoveMode.KeepAnchor)
    cursor.insertText(new[prefix : len(new) - suffix])
    cursor.endEditBlock()


def _units(text: str, index: int) -> int:
    """The UTF-16 position (Qt's) of code point ``index`` of ``text``."""
    return index + sum(1 for char in text[:index] if ord(char) > 0xFFFF)


def _index(text: str, units: int) -> int:
    """The code point index of UTF-16 position ``units`` (never inside a surrogate pair)."""
    index = 0
    seen = 0
    while index < len(text) and seen < units:
        seen += 2 if ord(text[index]) > 0xFFFF else 1
        index += 1
    return index
