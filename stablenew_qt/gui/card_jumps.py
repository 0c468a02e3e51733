"""CardJumps: a row of buttons above the stage cards, one per card, that scrolls its card to the
top of the cards' scroll area (issue 17, item 11: reaching ADetailer took a lot of scrolling).

Each button names its card and says whether the stage is on ("ADetailer ●" on, "ADetailer ○"
off), following the card's check box, so the row is also a summary of the chain that will run.
"""

from __future__ import annotations

from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QPushButton, QScrollArea, QWidget

ON, OFF = "●", "○"


class CardJumps(QWidget):
    """Buttons that scroll ``scroll`` to each of ``cards`` (title: card)."""

    def __init__(
        self, scroll: QScrollArea, cards: dict[str, QGroupBox], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("cards.jumps")
        self._scroll = scroll
        self.buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        self._cards = cards
        for name, card in cards.items():
            button = QPushButton()
            button.setObjectName(f"jump.{name}")
            button.setFlat(True)
            button.setToolTip(f"Scroll to the {card.title()} card")
            button.clicked.connect(lambda _checked=False, card=card: self.jump_to(card))
            if card.isCheckable():
                card.toggled.connect(lambda _on, card=card, button=button: self._label(button, card))
            self._label(button, card)
            self.buttons[name] = button
            row.addWidget(button)
        row.addStretch(1)

    def refresh(self) -> None:
        """Follow the cards' check boxes again (a whole new config sets them with signals blocked)."""
        for name, card in self._cards.items():
            self._label(self.buttons[name], card)

    def jump_to(self, card: QWidget) -> None:
        """Scroll so that ``card``'s top is at the top of the view (or as far as it goes)."""
        column = self._scroll.widget()
        if column is not None:
            self._scroll.verticalScrollBar().setValue(card.mapTo(column, card.rect().topLeft()).y())

    @staticmethod
    def _label(button: QPushButton, card: QGroupBox) -> None:
        state = "" if not card.isCheckable() else f" {ON if card.isChecked() else OFF}"
        button.setText(f"{card.title()}{state}")
