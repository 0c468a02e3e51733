"""What the user can do with a result image: the Results gallery's context menu, and the
History's for a job's first image (or, to delete, all of its images).

Open, full view, copy image, copy parameters, use these settings, send to img2img or upscale,
reveal in the folder, delete to the trash (after asking). Where there is no trash (Qt's refuses
the file), a second question asks before deleting for good; nothing is deleted silently. Files
are read and moved on the loader's pool, never on the GUI thread. The actions that change the
editor (use settings, send to) are signals the window answers; the rest act here. Issue 17.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import shiboken6
from PySide6.QtCore import QFile, QObject, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QImage
from PySide6.QtWidgets import QAbstractButton, QMenu, QMessageBox, QWidget

from ..core.config import RunConfig
from . import image_facts
from .compare_view import CompareView
from .image_facts import ImageFacts
from .image_viewer import ImageViewer, read_full
from .thumbnails import ThumbnailLoader

#: Stages an image can be sent to, as (stage, menu text).
SEND_TO: tuple[tuple[str, str], ...] = (
    ("img2img", "Send to img2img"),
    ("inpaint", "Send to inpaint"),
    ("upscale", "Send to upscale"),
)

log = logging.getLogger(__name__)


class ImageActions(QObject):
    """The actions on one image at a time, for the widget ``parent`` (dialogs open over it).
    ``loader`` reads the files (full view, copy image, copy parameters) and moves them to the
    trash off the GUI thread."""

    #: "Use these settings" (the image's path).
    useSettingsRequested = Signal(object)
    #: "Send to <stage>" (the image's path, the stage: "img2img" or "upscale").
    sendToRequested = Signal(object, str)
    #: The image went to the trash (its path).
    deleted = Signal(object)
    #: Something could not be done (a message for the user).
    errorOccurred = Signal(str)

    def __init__(self, parent: QWidget, loader: ThumbnailLoader) -> None:
        super().__init__(parent)
        self._parent = parent
        self.loader = loader
        self.viewer: ImageViewer | None = None
        self.compare_view: CompareView | None = None
        self.confirm: QMessageBox | None = None

    def menu(self, path: Path) -> QMenu:
        """The context menu for ``path`` (the caller shows it)."""
        menu = QMenu(self._parent)
        menu.setObjectName("results.menu")
        entries: list[tuple[str, Callable[[], object]]] = [
            ("Open", lambda: self.open(path)),
            ("Full view", lambda: self.full_view(path)),
            ("Copy image", lambda: self.copy_image(path)),
            ("Copy parameters", lambda: self.copy_parameters(path)),
            ("Use these settings", lambda: self.useSettingsRequested.emit(path)),
        ]
        entries += [(text, partial(self.sendToRequested.emit, path, stage)) for stage, text in SEND_TO]
        entries += [("Reveal in folder", lambda: self.reveal(path)), ("Delete…", lambda: self.delete(path))]
        for text, slot in entries:
            action = menu.addAction(text)
            action.setObjectName("results.menu." + text.lower().rstrip("…").replace(" ", "_"))
            action.triggered.connect(lambda _checked=False, slot=slot: slot())
        return menu

    def open(self, path: Path) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    def reveal(self, path: Path) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))

    def full_view(self, path: Path, paths: Sequence[Path] = ()) -> ImageViewer:
        """Open the full view on ``path``; Left / Right step through ``paths`` (the list it was
        opened from), Delete asks and trashes as :meth:`delete` does."""
        viewer = ImageViewer(path, self._parent, paths=paths, loader=self.loader)
        viewer.deleteRequested.connect(lambda shown: self.delete(shown, over=viewer))
        self.deleted.connect(viewer.remove)
        viewer.destroyed.connect(lambda: self._forget_viewer(viewer))
        self.viewer = viewer
        viewer.show()
        return viewer

    def _forget_viewer(self, viewer: ImageViewer) -> None:
        if self.viewer is viewer:
            self.viewer = None

    def compare(self, paths: Sequence[Path], labels: Sequence[str] = ()) -> CompareView | None:
        """Open two images side by side (``labels``: what tells them apart); a message unless
        exactly two are given."""
        if len(paths) != 2:
            self.errorOccurred.emit(f"Select two images to compare ({len(paths)} selected)")
            return None
        pair = (paths[0], paths[1])
        names = (labels[0], labels[1]) if len(labels) == 2 else None
        view = CompareView(pair, self.loader, names, self._parent)
        view.destroyed.connect(lambda: self._forget_compare(view))
        self.compare_view = view
        view.show()
        return view

    def _forget_compare(self, view: CompareView) -> None:
        if self.compare_view is view:
            self.compare_view = None

    def copy_image(self, path: Path) -> None:
        """Put the image on the clipboard (read on the loader's pool)."""
        self.loader.submit(partial(read_full, path), partial(self._on_copy_image_read, path))

    def _on_copy_image_read(self, path: Path, image: QImage) -> None:
        if image.isNull():
            self.errorOccurred.emit(f"Cannot read {path.name}")
            return
        QGuiApplication.clipboard().setImage(image)

    def copy_parameters(self, path: Path) -> None:
        """Put the image's infotext on the clipboard (read on the loader's pool)."""
        self.loader.submit(
            partial(image_facts.read_image_facts, path), partial(self._on_copy_parameters_read, path)
        )

    def _on_copy_parameters_read(self, path: Path, facts: ImageFacts) -> None:
        if facts.parameters:
            QGuiApplication.clipboard().setText(facts.parameters)
        elif facts.text == image_facts.NO_PARAMETERS:  # the clipboard keeps what it had
            self.errorOccurred.emit(f"Nothing copied: {path.name} stores no parameters")
        else:
            self.errorOccurred.emit(facts.text)  # unreadable: the reason

    def delete(self, path: Path, over: QWidget | None = None) -> QMessageBox:
        """Ask (over the widget ``over``, default the panel), then move ``path`` to the trash
        (emits :attr:`deleted`)."""
        return self.delete_files([path], over)

    def delete_files(
        self, paths: Sequence[Path], over: QWidget | None = None, what: str | None = None
    ) -> QMessageBox:
        """Ask "Move <what> to the trash?" (``what`` defaults to the file's name, or "N files"),
        then move ``paths`` to the trash on the loader's pool; :attr:`deleted` follows for each
        file gone. Where the trash refuses them, a second question asks before deleting them for
        good (No keeps them). Nothing is ever deleted without a Yes."""
        files = list(paths)
        what = what or (files[0].name if len(files) == 1 else f"{len(files)} files")
        trash = partial(self.loader.submit, partial(trash_files, files), partial(self._on_trashed, over))
        title = "Delete image" if len(files) == 1 else "Delete images"
        box = self._ask(title, f"Move {what} to the trash?", over, trash)
        box.setObjectName("dialog.delete_image")
        return box

    def _ask(
        self,
        title: str,
        text: str,
        over: QWidget | None,
        on_yes: Callable[[], object],
        no: QMessageBox.StandardButton = QMessageBox.StandardButton.Cancel,
    ) -> QMessageBox:
        yes = QMessageBox.StandardButton.Yes
        # ``over`` (the full view) may have closed while the files were moved.
        parent = over if over is not None and shiboken6.isValid(over) else self._parent
        icon = (
            QMessageBox.Icon.Question if no == QMessageBox.StandardButton.Cancel else QMessageBox.Icon.Warning
        )
        box = QMessageBox(icon, title, text, yes | no, parent)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setDefaultButton(no)  # Enter never deletes

        def answered(button: QAbstractButton) -> None:
            if box.standardButton(button) == yes:
                on_yes()

        box.buttonClicked.connect(answered)
        self.confirm = box
        box.open()
        return box

    def _on_trashed(self, over: QWidget | None, outcome: Removal) -> None:
        self._report(outcome)
        if outcome.kept:
            files = list(outcome.kept)
            unlink = partial(self.loader.submit, partial(unlink_files, files), self._report)
            text = f"The trash is not available here. Delete {len(files)} file(s) permanently?"
            box = self._ask("Delete permanently", text, over, unlink, QMessageBox.StandardButton.No)
            box.setObjectName("dialog.delete_permanently")

    def _report(self, outcome: Removal) -> None:
        for path in outcome.gone:
            self.deleted.emit(path)
        if outcome.errors:
            more = f" (and {len(outcome.errors) - 1} more, see the log)" if len(outcome.errors) > 1 else ""
            self.errorOccurred.emit(outcome.errors[0] + more)


@dataclass(frozen=True)
class Removal:
    """What :func:`trash_files` or :func:`unlink_files` did: the files now gone, those the trash
    would not take (still on disk), and a message per file that could not be removed."""

    gone: tuple[Path, ...] = ()
    kept: tuple[Path, ...] = ()
    errors: tuple[str, ...] = ()


def move_to_trash(path: Path) -> bool:
    """Move ``path`` to the system's trash (any thread); False where there is none or it refused."""
    moved = QFile.moveToTrash(str(path))  # (ok, new path) or ok, by PySide6 version
    return bool(moved[0] if isinstance(moved, tuple) else moved)


def trash_files(paths: Sequence[Path]) -> Removal:
    """Move each of ``paths`` to the trash (on the loader's pool: it touches the disk). A file
    already gone counts as gone; one the trash refused is kept, never deleted here."""
    gone: list[Path] = []
    kept: list[Path] = []
    for path in paths:
        if move_to_trash(path) or not path.exists():
            gone.append(path)
        else:
            log.warning("the trash did not take %s", path)
            kept.append(path)
    return Removal(tuple(gone), tuple(kept))


def unlink_files(paths: Sequence[Path]) -> Removal:
    """Delete ``paths`` for good (the user said Yes to that, on the loader's pool)."""
    gone: list[Path] = []
    errors: list[str] = []
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot delete %s", path, exc_info=True)
            errors.append(f"Cannot delete {path.name}: {exc.strerror or exc}")
        else:
            gone.append(path)
    return Removal(tuple(gone), errors=tuple(errors))


def sent_to(config: RunConfig, path: Path, stage: str) -> RunConfig:
    """``config`` starting ``stage`` ("img2img", "inpaint" or "upscale") from the image ``path``,
    as A1111's "Send to": txt2img off, the input image set, ``stage`` on (img2img off for
    upscale). "inpaint" is img2img with the previous image's mask and outpaint cleared (they
    belonged to another image); the window then opens the mask editor on it."""
    if stage not in dict(SEND_TO):
        raise ValueError(f"cannot send an image to {stage!r}; choose one of {', '.join(dict(SEND_TO))}")
    data = config.model_dump(mode="json")
    data["input_image_path"] = str(path)
    data["txt2img"]["enabled"] = False
    data["img2img"]["enabled"] = stage in ("img2img", "inpaint")
    if stage == "inpaint":
        data["img2img"].update(mask_path=None, mask_from_alpha=False)
        data["img2img"]["outpaint"] = {"left": 0, "right": 0, "top": 0, "bottom": 0}
    if stage == "upscale":
        data["upscale"]["enabled"] = True
    return RunConfig.from_dict(data)
