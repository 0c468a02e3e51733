"""The styles picker in the prompt area (issue 15): styles read from an A1111 install's styles.csv
(beside the models folder) and ours, ours winning; two ticked styles merged into the prompt and
negative prompt as A1111 merges them ({prompt} placeholder, else ", " appended), in the order
ticked; "Save as style" adds a row to our styles.csv atomically, every existing row, comment and
column intact. Real files, FakeExecutor engine."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor

from stablenew_qt.core.sweep import StyleLibrary
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.styles_picker import StylesPicker
from stablenew_qt.gui.testing import RUN_TIMEOUT_MS, MakeMainWindow

A1111_CSV = (
    "name,prompt,negative_prompt\n"
    '"Cinematic","cinematic still of {prompt}, moody","cartoon, {prompt}"\n'
    '"Film","film grain, ""35mm""","digital"\n'
)
OURS_CSV = (
    "name,prompt,negative_prompt,notes\n"
    "# kept by hand,,,\n"
    '"Film","grain","smooth","ours wins"\n'
    '"Noir","black and white,\nhigh contrast","colour",""\n'
)


def rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))


def picker_of(qtbot: Any, window: MainWindow, count: int) -> StylesPicker:
    picker = window.styles_picker
    qtbot.waitUntil(lambda: picker.list.count() == count, timeout=RUN_TIMEOUT_MS)
    return picker


def names(picker: StylesPicker) -> list[str]:
    return [picker.list.item(i).text() for i in range(picker.list.count())]


def test_two_styles_apply_in_the_order_ticked_and_a_new_one_is_saved_keeping_every_row(
    qtbot: Any, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    a1111 = tmp_path / "styles.csv"  # beside the models folder (tmp_path / "models")
    a1111.write_text(A1111_CSV, encoding="utf-8")
    ours = tmp_path / "data" / "styles.csv"
    ours.parent.mkdir()
    ours.write_text(OURS_CSV, encoding="utf-8")
    before_ours, before_a1111 = rows(ours), a1111.read_bytes()
    window = make_main_window(styles_file=ours)
    picker = picker_of(qtbot, window, 3)
    assert names(picker) == ["Cinematic", "Film", "Noir"], "one Film, ours; the comment row is no style"
    assert not picker.apply_button.isEnabled()
    window.model.set("prompt", "a lighthouse")
    window.model.set("negative_prompt", "blurry")
    picker.tick("Film", "Cinematic")  # Film first: the order ticked is the order applied
    assert picker.apply_button.isEnabled()
    qtbot.mouseClick(picker.apply_button, Qt.MouseButton.LeftButton)
    assert window.model.get("prompt") == "cinematic still of a lighthouse, grain, moody"
    assert window.model.get("negative_prompt") == "cartoon, blurry, smooth"
    assert window.prompt_panel.prompt.toPlainText() == "cinematic still of a lighthouse, grain, moody"
    assert picker.ticked == [] and not picker.apply_button.isEnabled(), "applied once, not again"
    assert picker.status.text() == "Applied: Film, Cinematic"

    window.model.set("prompt", 'a lighthouse, "quoted", at dusk')
    window.model.set("negative_prompt", "blurry\nwatermark")
    with qtbot.waitSignal(picker.loaded, timeout=RUN_TIMEOUT_MS):
        picker.save_as("Lighthouse")
    after = rows(ours)
    assert after[: len(before_ours)] == before_ours, "every row, comment and column kept"
    assert after[len(before_ours)] == [
        "Lighthouse",
        'a lighthouse, "quoted", at dusk',
        "blurry\nwatermark",
        "",
    ]
    assert a1111.read_bytes() == before_a1111, "the A1111 install's file is only read"
    assert (ours.parent / "styles.csv.bak").read_text(encoding="utf-8") == OURS_CSV
    assert names(picker) == ["Cinematic", "Film", "Noir", "Lighthouse"]
    saved = StyleLibrary.load([ours]).get("Lighthouse")  # what `queue add --styles` reads back
    assert (saved.prompt, saved.negative_prompt) == ('a lighthouse, "quoted", at dusk', "blurry\nwatermark")


def test_without_styles_files_saving_creates_ours(
    qtbot: Any, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    ours = tmp_path / "new-data" / "styles.csv"
    window = make_main_window(styles_file=ours)
    picker = window.styles_picker
    qtbot.waitUntil(lambda: picker.status.text().startswith("No styles yet"), timeout=RUN_TIMEOUT_MS)
    picker.save_as("#not a name")
    assert picker.status.text().startswith("Type a style name") and not ours.exists()
    window.model.set("prompt", "{prompt}, oil painting")
    with qtbot.waitSignal(picker.loaded, timeout=RUN_TIMEOUT_MS):
        picker.save_as(" Oil ")
    assert rows(ours) == [["name", "prompt", "negative_prompt"], ["Oil", "{prompt}, oil painting", ""]]
    window.model.set("prompt", "a barn")
    picker.tick("Oil")
    picker.apply_ticked()
    assert window.model.get("prompt") == "a barn, oil painting"


def test_a_broken_styles_file_is_one_line_and_nothing_else_breaks(
    qtbot: Any, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    ours = tmp_path / "data" / "styles.csv"
    ours.parent.mkdir()
    ours.write_bytes(b"name,prompt\n\xff\xfe\xfa broken")
    window = make_main_window(styles_file=ours)
    picker = window.styles_picker
    qtbot.waitUntil(lambda: picker.status.text().startswith("Styles not read"), timeout=RUN_TIMEOUT_MS)
    assert "\n" not in picker.status.text() and "Traceback" not in picker.status.text()
    assert picker.list.count() == 0


def test_choosing_another_models_folder_reads_the_styles_of_the_install_beside_it(
    qtbot: Any, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window(styles_file=tmp_path / "ours.csv")
    picker = window.styles_picker
    qtbot.waitUntil(lambda: picker.status.text().startswith("No styles yet"), timeout=RUN_TIMEOUT_MS)
    install = tmp_path / "webui"
    (install / "models").mkdir(parents=True)
    (install / "styles.csv").write_text(A1111_CSV, encoding="utf-8")
    with qtbot.waitSignal(picker.loaded, timeout=RUN_TIMEOUT_MS):
        window.prefs.models_dir = install / "models"
    assert names(picker) == ["Cinematic", "Film"]


def test_apply_never_adds_a_style_the_prompt_already_holds(
    qtbot: Any, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    ours = tmp_path / "data" / "styles.csv"
    ours.parent.mkdir()
    ours.write_text(OURS_CSV, encoding="utf-8")  # Film: grain / smooth; Noir: two lines / colour
    (tmp_path / "styles.csv").write_text(A1111_CSV, encoding="utf-8")  # Cinematic wraps {prompt}
    window = make_main_window(styles_file=ours)
    picker = picker_of(qtbot, window, 3)
    window.model.set("prompt", "a lighthouse")
    window.model.set("negative_prompt", "blurry")
    picker.tick("Film")
    picker.apply_ticked()
    styled = (window.model.get("prompt"), window.model.get("negative_prompt"))
    assert styled == ("a lighthouse, grain", "blurry, smooth")
    assert picker.status.text() == "Applied: Film"

    picker.tick("Film")
    qtbot.mouseClick(picker.apply_button, Qt.MouseButton.LeftButton)
    assert (window.model.get("prompt"), window.model.get("negative_prompt")) == styled
    assert picker.status.text() == "Already in the prompt: Film"
    assert picker.ticked == [] and not picker.apply_button.isEnabled()

    picker.tick("Film", "Cinematic")
    picker.apply_ticked()
    assert window.model.get("prompt") == "cinematic still of a lighthouse, grain, moody"
    assert window.model.get("negative_prompt") == "cartoon, blurry, smooth"
    assert picker.status.text() == "Applied: Cinematic; already in the prompt: Film"

    window.model.set("prompt", "cinematic  still of a lighthouse, grain, moody")  # edited by hand
    picker.tick("Cinematic", "Noir", "Film")
    picker.apply_ticked()
    assert window.model.get("prompt") == (
        "cinematic  still of a lighthouse, grain, moody, black and white,\nhigh contrast"
    )
    assert window.model.get("negative_prompt") == "cartoon, blurry, smooth, colour"
    assert picker.status.text() == "Applied: Noir; already in the prompt: Cinematic, Film"


def test_the_styles_an_image_was_made_with_show_after_its_restore_and_while_typing(
    qtbot: Any, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    """A1111 writes no style names into an image: after a restore the picker finds them in the
    prompt text, names them under the list, and Apply with them ticked adds nothing."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from stablenew_qt.gui.testing import restore_and_wait

    (tmp_path / "styles.csv").write_text(A1111_CSV, encoding="utf-8")
    window = make_main_window()
    picker = picker_of(qtbot, window, 2)
    assert picker.in_prompt == () and not picker.in_prompt_label.isVisibleTo(window)
    info = PngInfo()
    info.add_text(
        "parameters",
        'cinematic still of a fox, moody, film grain, "35mm"\n'
        "Negative prompt: cartoon, blurry, digital\nSteps: 12, Sampler: Euler a, Seed: 1, Size: 64x64",
    )
    image = tmp_path / "styled.png"
    Image.new("RGB", (8, 8)).save(image, pnginfo=info)
    restore_and_wait(qtbot, window, image)
    assert picker.in_prompt == ("Cinematic", "Film"), "in the order they were applied"
    assert picker.in_prompt_label.text() == "Styles in the prompt: Cinematic, Film"
    assert picker.in_prompt_label.isVisibleTo(window)
    restored = window.model.get("prompt")
    picker.tick("Film", "Cinematic")
    picker.apply_ticked()
    assert window.model.get("prompt") == restored
    assert picker.status.text() == "Already in the prompt: Film, Cinematic"

    window.prompt_panel.prompt.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClicks(window.prompt_panel.prompt, " more")  # Film's text no longer ends the prompt
    assert window.model.get("prompt") == restored + " more"
    qtbot.waitUntil(lambda: picker.in_prompt == (), timeout=RUN_TIMEOUT_MS)
    assert not picker.in_prompt_label.isVisibleTo(window)
