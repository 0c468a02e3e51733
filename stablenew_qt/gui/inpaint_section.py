"""The img2img card's "Size and inpaint" section: processing size, resize mode, the inpaint keys,
and the mask editor that writes ``img2img.mask_path``.

"Paint mask…" opens a :class:`~.mask_editor.MaskEditorDialog` on ``input_image_path`` (with the
current mask file loaded, and the outpaint sides); closing it saves the mask as a snapshot PNG in
the data folder's ``masks/`` (a file that never changes, so a queued job keeps its mask) and sets
``img2img.mask_path`` and ``img2img.outpaint``. Every file read and write runs on the editor's
worker thread; the dialog is made for each opening and shut down once its last write is done.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QPushButton, QWidget
from superqt import QCollapsible

from ..core.outputs import app_data_dir
from .config_model import ConfigModel
from .fields import Binder, tip
from .mask_editor import MaskEditorDialog, OutpaintSides

RESIZE_MODES = ("just resize", "crop and resize", "resize and fill", "latent upscale")
MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")


def masks_dir() -> Path:
    """Where painted masks are kept (snapshots named by their bytes)."""
    return app_data_dir() / "masks"


class InpaintSection(QCollapsible):
    """Size, resize mode and inpaint settings of the img2img card, with the mask editor."""

    def __init__(self, model: ConfigModel, binder: Binder, masks: Path | None = None) -> None:
        super().__init__("Size and inpaint")
        self.setObjectName("img2img.inpaint")
        self.model = model
        self.masks = masks or masks_dir()
        self.dialog: MaskEditorDialog | None = None
        body = QWidget()
        form = QFormLayout(body)
        b = binder
        size_tip = "Processing {}; 0 = the input's own (floored to a multiple of 8)."
        form.addRow("Width", b.spin("img2img.width", 0, 4096, tip(size_tip.format("width"), "Width"), 8))
        form.addRow("Height", b.spin("img2img.height", 0, 4096, tip(size_tip.format("height"), "Height"), 8))
        form.addRow(
            "Resize mode",
            b.combo("img2img.resize_mode", RESIZE_MODES, tip("How the input gets the size.", "Resize mode")),
        )
        form.addRow("Mask", self._mask_row())
        blur = b.spin("img2img.mask_blur", 0, 64, tip("Blur of the mask, pixels.", "Mask blur"))
        form.addRow("Mask blur", blur)
        form.addRow(
            "Mask mode",
            b.combo(
                "img2img.mask_mode",
                ("inpaint masked", "inpaint not masked"),
                tip("Repaint the white area, or everything else.", "Mask mode"),
            ),
        )
        form.addRow(
            "Masked content",
            b.combo(
                "img2img.masked_content",
                MASKED_CONTENT,
                tip("What the masked area starts from.", "Masked content"),
            ),
        )
        form.addRow(
            "Inpaint area",
            b.combo(
                "img2img.inpaint_area",
                ("whole picture", "only masked"),
                tip("Repaint the whole picture, or a crop around the mask.", "Inpaint area"),
            ),
        )
        form.addRow(
            "Padding",
            b.spin(
                "img2img.only_masked_padding",
                0,
                256,
                tip("Pixels around the mask for only masked.", "Only masked padding, pixels"),
            ),
        )
        self.addWidget(body)
        model.changed.connect(self._on_changed)
        model.replaced.connect(self._on_replaced)
        self._show_mask()

    def _mask_row(self) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        self.mask_label = QLabel()
        self.mask_label.setObjectName("img2img.mask_label")
        self.paint_button = QPushButton("Paint mask…")
        self.paint_button.setObjectName("img2img.paint_mask")
        self.paint_button.setToolTip(tip("Paint the mask and outpaint sides on the input image.", "Inpaint"))
        self.paint_button.clicked.connect(self._on_paint_clicked)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setObjectName("img2img.clear_mask")
        self.clear_button.setToolTip("No mask and no outpaint: plain img2img")
        self.clear_button.clicked.connect(self._on_clear_clicked)
        layout.addWidget(self.mask_label, 1)
        layout.addWidget(self.paint_button)
        layout.addWidget(self.clear_button)
        return row

    # -- the mask label ---------------------------------------------------------------------------

    def _on_changed(self, path: str) -> None:
        if path.startswith(("img2img.mask", "img2img.outpaint")):
            self._show_mask()

    def _on_replaced(self, _config: object) -> None:
        self._show_mask()

    def _show_mask(self) -> None:
        path = self.model.get("img2img.mask_path")
        sides = self.model.get("img2img.outpaint")
        parts = []
        if path:
            parts.append(Path(path).name)
        elif self.model.get("img2img.mask_from_alpha"):
            parts.append("the input's transparency")
        if any(sides.values()):
            parts.append("outpaint " + ", ".join(f"{k} {v}" for k, v in sides.items() if v))
        self.mask_label.setText("; ".join(parts) or "No mask (plain img2img)")

    # -- the editor -------------------------------------------------------------------------------

    def _on_paint_clicked(self) -> None:
        source = self.model.get("input_image_path")
        if not source:
            self.mask_label.setText("Choose an input image first (txt2img off)")
            return
        if self.dialog is not None:
            self.dialog.raise_()
            return
        dialog = MaskEditorDialog(self.window())
        editor = dialog.editor
        mask = self.model.get("img2img.mask_path")
        if mask:
            editor.image_changed.connect(lambda: editor.load_mask(mask) if editor.has_image else None)
        editor.set_image(source)
        sides = self.model.get("img2img.outpaint")
        editor.set_outpaint(OutpaintSides(sides["left"], sides["right"], sides["top"], sides["bottom"]))
        dialog.finished.connect(self._on_dialog_finished)
        self.dialog = dialog
        dialog.show()

    def _on_dialog_finished(self, _result: int) -> None:
        dialog = self.dialog
        if dialog is None:
            return
        editor = dialog.editor
        if not editor.has_image:
            self._close_dialog()
            return
        sides = editor.outpaint()
        self.model.set("img2img.outpaint", dict(zip(("left", "right", "top", "bottom"), sides, strict=True)))
        if editor.is_empty:
            self.model.set("img2img.mask_path", None)
            self._close_dialog()
            return
        self.model.set("img2img.mask_from_alpha", False)
        editor.write_mask_snapshot(self.masks, self._on_mask_saved)

    def _on_mask_saved(self, path: Path) -> None:
        self.model.set("img2img.mask_path", str(path))
        self._close_dialog()

    def _close_dialog(self) -> None:
        dialog, self.dialog = self.dialog, None
        if dialog is not None:
            dialog.editor.shutdown()
            dialog.deleteLater()

    def _on_clear_clicked(self) -> None:
        self.model.set("img2img.mask_path", None)
        self.model.set("img2img.mask_from_alpha", False)
        self.model.set("img2img.outpaint", {"left": 0, "right": 0, "top": 0, "bottom": 0})

    def shutdown(self) -> None:
        """Finish an open editor's writes (the window calls it when it closes)."""
        self._close_dialog()
