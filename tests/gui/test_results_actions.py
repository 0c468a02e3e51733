"""The Results gallery's actions (issue 17, item 6): context menu, full view with zoom, delete to
the trash after asking, send to img2img / upscale, labels that tell images apart."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from stablenew_qt.gui import image_actions, image_facts
from stablenew_qt.gui.image_viewer import ImageViewer
from stablenew_qt.gui.results_panel import READING, image_label
from stablenew_qt.gui.testing import MakeMainWindow


def a1111_png(path: Path) -> Path:
    info = PngInfo()
    info.add_text(
        "parameters", "a red fox in the snow\nNegative prompt: blurry\nSteps: 12, Seed: 4242, Model: tiny-sd"
    )
    Image.new("RGB", (64, 48), (200, 90, 40)).save(path, pnginfo=info)
    return path


MENU = [
    "Open",
    "Full view",
    "Copy image",
    "Copy parameters",
    "Use these settings",
    "Send to img2img",
    "Send to inpaint",
    "Send to upscale",
    "Reveal in folder",
    "Delete…",
]


def _shown(window: object, tmp_path: Path, name: str = "00000-4242.png") -> Path:
    path = a1111_png(tmp_path / name)
    window.results_panel.add_image(path)  # type: ignore[attr-defined]
    return path


def _action(menu: object, text: str) -> QAction:
    [action] = [a for a in menu.actions() if a.text() == text]  # type: ignore[attr-defined]
    return action


def test_the_context_menu_offers_every_action_and_use_settings_restores(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    path = _shown(window, tmp_path)
    menu = window.results_panel.actions_.menu(path)
    assert [a.text() for a in menu.actions()] == MENU
    with qtbot.waitSignal(window.restorer.restored, timeout=5000):  # read off the GUI thread
        _action(menu, "Use these settings").trigger()
    assert window.model.get("prompt") == "a red fox in the snow"
    QGuiApplication.clipboard().clear()
    _action(menu, "Copy parameters").trigger()  # the file is read on the loader's pool
    assert QGuiApplication.clipboard().text() == ""
    qtbot.waitUntil(
        lambda: (
            QGuiApplication.clipboard().text().startswith("a red fox in the snow\nNegative prompt: blurry")
        )
    )
    _action(menu, "Copy image").trigger()
    qtbot.waitUntil(lambda: QGuiApplication.clipboard().image().size().width() == 64)


def test_send_to_img2img_and_upscale_start_from_the_image(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    path = _shown(window, tmp_path)
    _action(window.results_panel.actions_.menu(path), "Send to img2img").trigger()
    assert window.model.get("input_image_path") == str(path)
    assert not window.cards["txt2img"].isChecked() and window.cards["img2img"].isChecked()
    assert window.model.plan is not None and window.model.plan.names[0] == "img2img"
    _action(window.results_panel.actions_.menu(path), "Send to upscale").trigger()
    assert window.cards["upscale"].isChecked() and not window.cards["img2img"].isChecked()
    assert window.model.plan is not None and list(window.model.plan.names) == ["upscale"]


def test_send_to_inpaint_starts_img2img_on_the_image_and_opens_the_mask_editor(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    path = _shown(window, tmp_path)
    window.model.set("img2img.mask_path", str(tmp_path / "old-mask.png"))  # another image's mask
    _action(window.results_panel.actions_.menu(path), "Send to inpaint").trigger()
    assert window.model.get("input_image_path") == str(path)
    assert window.cards["img2img"].isChecked() and not window.cards["txt2img"].isChecked()
    assert window.model.get("img2img.mask_path") is None
    section = window.cards["img2img"].inpaint
    assert section.dialog is not None and section.dialog.isVisible(), "the mask editor is open"
    section.dialog.close()


def test_delete_asks_and_cancel_keeps_the_image(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the trash, on Linux (Qt needs
    (tmp_path / "data").mkdir()  # the folder to exist; without it there is no trash)
    window = make_main_window()
    path = _shown(window, tmp_path)
    box = window.results_panel.actions_.delete(path)
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert path.exists() and window.results_panel.image_paths() == [path]
    box = window.results_panel.actions_.delete(path)
    with qtbot.waitSignal(window.results_panel.actions_.deleted):
        box.button(QMessageBox.StandardButton.Yes).click()
    assert not path.exists() and window.results_panel.image_paths() == []
    assert (tmp_path / "data" / "Trash" / "files" / path.name).is_file(), "in the trash, not destroyed"


def test_double_click_opens_the_full_view_with_zoom(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    path = _shown(window, tmp_path)
    gallery = window.results_panel.gallery
    window.tabs.setCurrentWidget(window.results_panel)
    item = gallery.item(0)
    gallery.itemActivated.emit(item)  # what a double-click or Enter on the item emits
    viewer = window.results_panel.actions_.viewer
    assert isinstance(viewer, ImageViewer) and viewer.isVisible() and viewer.path == path
    qtbot.waitUntil(lambda: not viewer.pixmap.isNull())  # decoded on the loader's pool
    viewer.set_zoom(1.0)
    assert viewer.image.size().width() == 64
    qtbot.keyClick(viewer, Qt.Key.Key_Plus, Qt.KeyboardModifier.ControlModifier)
    assert viewer.zoom == 1.25 and viewer.image.width() == 80
    viewer.close()


def test_labels_tell_images_apart_by_time_and_seed() -> None:
    now = datetime(2026, 12, 2, 15, 30, 0).timestamp()
    assert image_label(Path("00000-4242.png"), now - 5, now) == "15:29:55 · seed 4242"
    assert image_label(Path("00001-4243.png"), now - 86400 * 2, now) == "11-30 15:30 · seed 4243"
    assert image_label(Path("fox.png"), now, now) == "15:30:00 · fox"
    assert image_label(Path("xyz_grid-00001.png"), now, now) == "15:30:00 · xyz_grid-00001"  # not a seed
    assert image_label(Path("fox.png"), now, now, seed="7", model="tiny-sd") == "15:30:00 · seed 7 · tiny-sd"


PERMANENTLY = "dialog.delete_permanently"


def test_without_a_trash_delete_asks_again_before_deleting_for_good_and_no_keeps_the_file(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried: list[Path] = []

    def no_trash(path: Path) -> bool:  # what QFile.moveToTrash answers where there is none
        tried.append(path)
        return False

    monkeypatch.setattr(image_actions, "move_to_trash", no_trash)
    window = make_main_window()
    actions = window.results_panel.actions_
    path = _shown(window, tmp_path)
    deleted: list[Path] = []
    actions.deleted.connect(deleted.append)
    first = actions.delete(path)
    first.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: actions.confirm is not first, timeout=5000)  # the trash refused it
    second = actions.confirm
    assert second is not None and second.objectName() == PERMANENTLY
    assert second.text() == "The trash is not available here. Delete 1 file(s) permanently?"
    assert second.defaultButton() is second.button(QMessageBox.StandardButton.No)
    assert tried == [path] and path.is_file() and deleted == [], "nothing deleted before the second Yes"
    second.button(QMessageBox.StandardButton.No).click()
    qtbot.wait(50)
    assert path.is_file() and deleted == [] and window.results_panel.image_paths() == [path]

    actions.delete(path).button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: actions.confirm is not None and actions.confirm.objectName() == PERMANENTLY)
    with qtbot.waitSignal(actions.deleted, timeout=5000):
        actions.confirm.button(QMessageBox.StandardButton.Yes).click()  # type: ignore[union-attr]
    assert not path.exists() and deleted == [path] and window.results_panel.image_paths() == []


def test_trash_files_keeps_what_the_trash_refused_and_unlink_files_says_what_it_could_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept, gone, folder = tmp_path / "kept.png", tmp_path / "gone.png", tmp_path / "a-folder.png"
    kept.write_bytes(b"x")
    folder.mkdir()
    monkeypatch.setattr(image_actions, "move_to_trash", lambda path: False)
    assert image_actions.trash_files([kept, gone]) == image_actions.Removal(gone=(gone,), kept=(kept,))
    assert kept.is_file(), "a refused file is never deleted by the trash step"
    outcome = image_actions.unlink_files([kept, folder])
    assert outcome.gone == (kept,) and not kept.exists() and folder.is_dir()
    [error] = outcome.errors
    assert error.startswith("Cannot delete a-folder.png: ") and "\n" not in error


def test_copy_parameters_button_waits_for_the_parameters_and_never_copies_a_status_text(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real = image_facts.read_image_facts
    monkeypatch.setattr(image_facts, "read_image_facts", lambda path: (release.wait(5), real(path))[1])
    window = make_main_window()
    panel = window.results_panel
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)  # no infotext
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    path = _shown(window, tmp_path)
    panel.gallery.setCurrentRow(0)
    assert panel.parameters.toPlainText() == READING and not panel.copy_button.isEnabled()
    QGuiApplication.clipboard().setText("kept")
    panel.copy_button.click()  # disabled: nothing happens
    panel._on_copy_clicked()  # and the slot itself copies nothing unread
    assert QGuiApplication.clipboard().text() == "kept"
    release.set()
    qtbot.waitUntil(panel.copy_button.isEnabled, timeout=5000)
    panel.copy_button.click()
    assert QGuiApplication.clipboard().text() == real(path).parameters
    for other in (plain, broken):  # "(no parameters stored…)" or why it cannot be read: not copied
        panel.add_image(other)
        panel.gallery.setCurrentRow(0)
        qtbot.waitUntil(lambda other=other: panel.facts(other) is not None, timeout=5000)
        assert panel.parameters.toPlainText() not in ("", READING)
        assert not panel.copy_button.isEnabled()
    panel.gallery.setCurrentRow(2)  # back to the image with parameters: read before, at once
    assert panel.copy_button.isEnabled()
