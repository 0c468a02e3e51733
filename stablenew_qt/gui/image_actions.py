"""What the user can do with a result image: the Results gallery's context menu.

Open, full view, copy image, copy parameters, use these settings, send to img2img or upscale,
reveal in the folder, delete to the trash (after asking). The actions that change the editor
(use settings, send to) are signals the window answers; the rest act here. Issue 17, item 6.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from PySide6.QtCore import QFile, QObject, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QImage
from PySide6.QtWidgets import QMenu, QMessageBox, QWidget

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


class ImageActions(QObject):
    """The actions on one image at a time, for the widget ``parent`` (dialogs open over it).
    ``loader`` reads the files (full view, copy image, copy parameters) off the GUI thread."""

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
        self.loader.submit(partial(image_facts.read_image_facts, path), self._on_copy_parameters_read)

    def _on_copy_parameters_read(self, facts: ImageFacts) -> None:
        if facts.parameters or facts.text == image_facts.NO_PARAMETERS:
            QGuiApplication.clipboard().setText(facts.parameters)
        else:
            self.errorOccurred.emit(facts.text)  # unreadable: the reason

    def delete(self, path: Path, over: QWidget | None = None) -> QMessageBox:
        """Ask (over the widget ``over``, default the panel), then move ``path`` to the trash
        (emits :attr:`deleted`)."""
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete image",
            f"Move {path.name} to the trash?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            over or self._parent,
        )
        box.setObjectName("dialog.delete_image")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)

        def answered(button: object) -> None:
            if box.standardButton(button) == QMessageBox.StandardButton.Yes:  # type: ignore[arg-type]
                self._trash(path)

        box.buttonClicked.connect(answered)
        self.confirm = box
        box.open()
        return box

    def _trash(self, path: Path) -> None:
        moved = QFile.moveToTrash(str(path))  # (ok, new path) or ok, by PySide6 version
        if (moved[0] if isinstance(moved, tuple) else bool(moved)) or _unlinked(path):
            self.deleted.emit(path)
        else:
            self.errorOccurred.emit(f"Cannot delete {path.name}")


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


def _unlinked(path: Path) -> bool:
    # Where there is no trash (a headless system), the file is removed: the user confirmed.
    try:
        path.unlink()
    except OSError:
        return False
    return True
