"""ExtraNetworksPanel on real catalog entries: search, click -> text, family marks, off-thread work."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage

from stablenew_qt.core.extra_networks import ExtraNetworksCatalog, NetworkFamily
from stablenew_qt.gui.extra_networks_panel import ENTRY_ROLE, MISMATCH_ROLE, ExtraNetworksPanel
from stablenew_qt.gui.testing import restore_and_wait

WAIT_MS = 5000
SD1_KEY = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
XL_KEY = "lora_te2_text_model_encoder_layers_0_self_attn_q_proj"


def write_lora(path: Path, key: str, metadata: dict[str, str] | None = None) -> Path:
    """A tiny kohya safetensors file (pure bytes: no torch in GUI tests)."""
    import struct

    header: dict[str, object] = {
        f"{key}.lora_down.weight": {"dtype": "F16", "shape": [1, 768], "data_offsets": [0, 1536]},
        f"{key}.lora_up.weight": {"dtype": "F16", "shape": [768, 1], "data_offsets": [1536, 3072]},
    }
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(3072))
    return path


def write_png(path: Path, color: str = "red") -> Path:
    image = QImage(300, 200, QImage.Format.Format_RGB32)
    image.fill(QColor(color))
    assert image.save(str(path))
    return path


@pytest.fixture
def catalog(tmp_path: Path) -> ExtraNetworksCatalog:
    models = tmp_path / "models"
    detail = write_lora(models / "Lora" / "add_detail.safetensors", SD1_KEY, {"ss_output_name": "AddDetail"})
    write_png(detail.with_name("add_detail.preview.png"))
    (detail.with_name("add_detail.json")).write_text(
        json.dumps({"activation text": "intricate", "preferred weight": 0.6, "negative text": "blurry"}),
        encoding="utf-8",
    )
    write_lora(
        models / "Lora" / "xl" / "pixel_art.safetensors", XL_KEY, {"ss_base_model_version": "sdxl_base_v1-0"}
    )
    write_lora(models / "Lora" / "mystery.safetensors", "lora_unet_down_blocks_0_resnets_0_conv1")
    (models / "Lora" / "old.ckpt").write_bytes(b"pickle")
    emb = models / "embeddings"
    emb.mkdir(parents=True)
    (emb / "EasyNegative.pt").write_bytes(b"weights")
    return ExtraNetworksCatalog(models)


def scan_of(catalog: ExtraNetworksCatalog, threads: list[threading.Thread] | None = None) -> Any:
    def scan() -> Any:
        if threads is not None:
            threads.append(threading.current_thread())
        catalog.refresh()
        return catalog.loras(), catalog.embeddings()

    return scan


@pytest.fixture
def panel(qtbot: Any, catalog: ExtraNetworksCatalog) -> Iterator[ExtraNetworksPanel]:
    made = ExtraNetworksPanel(scan_of(catalog))
    qtbot.addWidget(made)
    made.set_entries(catalog.loras(), catalog.embeddings())
    yield made
    made.shutdown()


def item_named(panel: ExtraNetworksPanel, name: str, tab: int = 0) -> Any:
    cards = panel.lora_cards if tab == 0 else panel.embedding_cards
    for row in range(cards.count()):
        if cards.item(row).data(ENTRY_ROLE).name == name:
            return cards.item(row)
    raise AssertionError(name)


def click(qtbot: Any, panel: ExtraNetworksPanel, name: str, tab: int = 0) -> list[tuple[str, str]]:
    got: list[tuple[str, str]] = []
    panel.insertRequested.connect(lambda prompt, negative: got.append((prompt, negative)))
    cards = panel.lora_cards if tab == 0 else panel.embedding_cards
    panel.tabs.setCurrentIndex(tab)
    panel.show()
    item = item_named(panel, name, tab)
    cards.scrollToItem(item)
    rect = cards.visualItemRect(item)
    qtbot.mouseClick(cards.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    return got


def test_cards_for_every_file_sorted_with_counts(panel: ExtraNetworksPanel) -> None:
    assert panel.visible_names(0) == ["add_detail", "mystery", "old", "pixel_art"]
    assert panel.visible_names(1) == ["EasyNegative"]
    assert panel.tabs.tabText(0) == "LoRA (4)" and panel.tabs.tabText(1) == "Embeddings (1)"
    assert item_named(panel, "pixel_art").text() == "pixel_art\n[SDXL]"
    assert item_named(panel, "add_detail").text() == "add_detail\n[SD 1.x]\nintricate"


def test_search_filters_by_name_alias_folder_and_trigger_words(qtbot: Any, panel: ExtraNetworksPanel) -> None:
    for text, expected in [
        ("ADDdetail", ["add_detail"]),
        ("xl/", ["pixel_art"]),
        ("intri", ["add_detail"]),
        ("no such", []),
    ]:
        qtbot.keyClicks(panel.search, text)
        assert panel.visible_names(0) == expected, text
        panel.search.clear()
    assert len(panel.visible_names(0)) == 4


def test_clicking_a_lora_inserts_a1111s_text(qtbot: Any, panel: ExtraNetworksPanel) -> None:
    assert click(qtbot, panel, "add_detail") == [("<lora:AddDetail:0.6> intricate", "(blurry:1)")]
    panel.default_weight = 0.8
    assert click(qtbot, panel, "pixel_art") == [("<lora:pixel_art:0.8>", "")]
    panel.default_weight = 1.0
    assert click(qtbot, panel, "mystery") == [("<lora:mystery:1>", "")]


def test_clicking_an_embedding_inserts_its_name(qtbot: Any, panel: ExtraNetworksPanel) -> None:
    assert click(qtbot, panel, "EasyNegative", tab=1) == [("EasyNegative", "")]


def test_an_unusable_file_is_disabled_and_says_why(qtbot: Any, panel: ExtraNetworksPanel) -> None:
    item = item_named(panel, "old")
    assert not item.flags() & Qt.ItemFlag.ItemIsEnabled
    assert "old.ckpt is a pickle" in item.toolTip()
    assert click(qtbot, panel, "old") == []


def test_cards_of_another_family_are_marked(panel: ExtraNetworksPanel) -> None:
    assert not any(item_named(panel, n).data(MISMATCH_ROLE) for n in ("add_detail", "pixel_art"))
    panel.model_family = NetworkFamily.SDXL
    assert item_named(panel, "add_detail").data(MISMATCH_ROLE) is True
    assert "[SD 1.x – does not fit]" in item_named(panel, "add_detail").text()
    assert "does not fit the current SDXL model" in item_named(panel, "add_detail").toolTip()
    assert item_named(panel, "pixel_art").data(MISMATCH_ROLE) is False
    assert item_named(panel, "mystery").data(MISMATCH_ROLE) is False, "unknown family: not marked"
    panel.model_family = NetworkFamily.SD1
    assert item_named(panel, "pixel_art").data(MISMATCH_ROLE) is True
    assert item_named(panel, "add_detail").data(MISMATCH_ROLE) is False


def test_previews_arrive_from_the_loader(qtbot: Any, panel: ExtraNetworksPanel) -> None:
    item = item_named(panel, "add_detail")
    qtbot.waitUntil(lambda: panel.thumbnails.decodes >= 1 and panel.thumbnails.is_idle(), timeout=WAIT_MS)
    image = item.icon().pixmap(128, 128).toImage()
    assert image.pixelColor(64, 64) == QColor("red")
    assert item_named(panel, "mystery").icon().pixmap(128, 128).toImage().pixelColor(64, 64) != QColor("red")


def test_refresh_scans_off_the_gui_thread(qtbot: Any, catalog: ExtraNetworksCatalog, tmp_path: Path) -> None:
    threads: list[threading.Thread] = []
    panel = ExtraNetworksPanel(scan_of(catalog, threads))
    qtbot.addWidget(panel)
    try:
        write_lora(tmp_path / "models" / "Lora" / "new_one.safetensors", SD1_KEY)
        with qtbot.waitSignal(panel.refreshFinished, timeout=WAIT_MS):
            panel.refresh()
            assert not panel.refresh_button.isEnabled() and panel.status.text() == "Scanning…"
        assert threads and threads[0] is not threading.main_thread()
        assert "new_one" in panel.visible_names(0) and panel.refresh_button.isEnabled()
        assert panel.status.text() == "5 LoRAs, 1 embeddings"
    finally:
        panel.shutdown()


def test_a_failing_scan_is_reported_not_raised(qtbot: Any) -> None:
    def scan() -> Any:
        raise PermissionError("models/Lora: permission denied")

    panel = ExtraNetworksPanel(scan)
    qtbot.addWidget(panel)
    try:
        panel.refresh()
        qtbot.waitUntil(lambda: panel.refresh_button.isEnabled(), timeout=WAIT_MS)
        assert panel.status.text() == "Scan failed: PermissionError: models/Lora: permission denied"
    finally:
        panel.shutdown()


def test_the_window_tab_inserts_at_the_prompt_cursor_with_focus(
    qtbot: Any, make_main_window: Any, tmp_path: Path
) -> None:
    from stablenew_qt.core.config import RunConfig
    from stablenew_qt.gui.extra_networks_tab import TAB_TITLE

    detail = write_lora(tmp_path / "models" / "Lora" / "add_detail.safetensors", SD1_KEY)
    detail.with_name("add_detail.json").write_text(json.dumps({"negative text": "blurry"}), encoding="utf-8")
    window = make_main_window(config=RunConfig.from_dict({"prompt": "a cat"}))
    tabs, panel = window.tabs, window.extra_networks.panel
    assert tabs.tabText(tabs.indexOf(panel)) == TAB_TITLE
    assert panel.lora_cards.count() == 0, "nothing is scanned before the tab is shown"
    with qtbot.waitSignal(panel.refreshFinished, timeout=WAIT_MS):
        tabs.setCurrentWidget(panel)
    box = window.prompt_panel.prompt
    cursor = box.textCursor()
    cursor.setPosition(len("a cat"))
    box.setTextCursor(cursor)
    assert click(qtbot, panel, "add_detail")
    qtbot.waitUntil(lambda: window.model.get("prompt") == "a cat <lora:add_detail:1>", timeout=WAIT_MS)
    assert window.model.get("negative_prompt") == "(blurry:1)"
    assert box.hasFocus()
    cursor.setPosition(0)
    box.setTextCursor(cursor)
    assert click(qtbot, panel, "add_detail")
    qtbot.waitUntil(
        lambda: window.model.get("prompt") == "<lora:add_detail:1> a cat <lora:add_detail:1>", timeout=WAIT_MS
    )


def test_a_missing_lora_shows_under_the_prompt_checked_off_the_gui_thread(
    qtbot: Any, make_main_window: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stablenew_qt.gui.extra_networks_tab as tab_module

    write_lora(tmp_path / "models" / "Lora" / "add_detail.safetensors", SD1_KEY)
    threads: list[threading.Thread] = []
    real = tab_module.tag_problems

    def spy(*args: Any) -> list[str]:
        threads.append(threading.current_thread())
        return real(*args)

    monkeypatch.setattr(tab_module, "tag_problems", spy)
    window = make_main_window()
    label = window.extra_networks.problems
    window.model.set("prompt", "a cat <lora:add_detial:0.8>")
    qtbot.waitUntil(label.isVisible, timeout=WAIT_MS)
    assert label.text().startswith("prompt: LoRA 'add_detial' not found in")
    assert "closest installed: add_detail" in label.text()
    assert threads and all(t is not threading.main_thread() for t in threads)
    window.model.set("prompt", "a cat <lora:add_detail:0.8>")
    qtbot.waitUntil(lambda: not label.isVisible(), timeout=WAIT_MS)


def test_restoring_an_image_renames_its_lora_by_hash(
    qtbot: Any, make_main_window: Any, tmp_path: Path
) -> None:
    import hashlib
    import struct

    from PIL import Image, PngImagePlugin

    local = write_lora(tmp_path / "models" / "Lora" / "add_detail.safetensors", SD1_KEY)
    data = local.read_bytes()
    addnet = hashlib.sha256(data[8 + struct.unpack("<Q", data[:8])[0] :]).hexdigest()[:12]
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        "a cat <lora:detail_v1:0.7>\nSteps: 20, Sampler: Euler a, Seed: 5, Size: 512x512, "
        f'Lora hashes: "detail_v1: {addnet}"',
    )
    image = tmp_path / "from_a1111.png"
    Image.new("RGB", (8, 8)).save(image, pnginfo=info)
    window = make_main_window()
    restore_and_wait(qtbot, window, image)
    assert window.model.get("prompt") == "a cat <lora:detail_v1:0.7>", "as written first"
    qtbot.waitUntil(lambda: window.model.get("prompt") == "a cat <lora:add_detail:0.7>", timeout=WAIT_MS)
    assert window.model.get("seed") == 5
