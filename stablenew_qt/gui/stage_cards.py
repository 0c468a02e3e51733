"""Stage cards: one checkable card per stage of the seed's catalog, in canonical order.

Each card takes the ConfigModel, writes its knobs into it through a Binder, re-reads them when the
model is replaced, and shows the config problems that concern it inline. An unticked card greys
out its knobs. The upscale card reads its input image's size off the GUI thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget
from superqt import QCollapsible
from superqt.utils import signals_blocked

from ..core.config import Txt2ImgConfig
from ..core.errors import ConfigProblem
from ..core.field_labels import all_in_user_words
from ..core.infotext_parse import SAME_CHECKPOINT, SAME_SAMPLER, SAME_SCHEDULER
from ..core.samplers import SAMPLERS, SCHEDULERS
from ..core.sizes import hires_target_size, txt2img_output_size, upscaled_size
from .background import Background
from .config_model import ConfigModel
from .elided_label import breakable
from .fields import Binder, narrow, set_items, tip
from .inpaint_section import InpaintSection
from .services import BUILTIN_UPSCALERS, HIRES_UPSCALERS, ModelChoices
from .stage_state import family_size_after, hires_title, refiner_title

SIZE_PRESETS: tuple[tuple[str, int, int], ...] = (
    ("512 × 512 (SD 1.5)", 512, 512),
    ("512 × 768 (SD 1.5 portrait)", 512, 768),
    ("768 × 512 (SD 1.5 landscape)", 768, 512),
    ("1024 × 1024 (SDXL)", 1024, 1024),
    ("832 × 1216 (SDXL portrait)", 832, 1216),
    ("1216 × 832 (SDXL landscape)", 1216, 832),
    ("1344 × 768 (SDXL wide)", 1344, 768),
)


class StageCard(QGroupBox):
    """A checkable card for one stage (``section`` of the RunConfig) with an inline error line."""

    def __init__(self, model: ConfigModel, section: str, title: str, parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self.model = model
        self.section = section
        self.binder = Binder(model)
        self.setObjectName(f"{section}.card")
        self.setCheckable(True)
        self.setChecked(bool(model.get(f"{section}.enabled")))
        self.setToolTip(f"Run the {title} stage")
        self.toggled.connect(self._on_toggled)
        model.replaced.connect(self._on_replaced)
        self.error_label = QLabel()
        self.error_label.setObjectName(f"{section}.error")
        self.error_label.setWordWrap(True)
        self.error_label.setProperty("role", "error")  # styled by stablenew_qt/resources/style.qss
        self.error_label.hide()
        self.form = QFormLayout()
        layout = QVBoxLayout(self)
        layout.addWidget(self.error_label)
        layout.addLayout(self.form)

    def _on_toggled(self, checked: bool) -> None:
        self.model.set(f"{self.section}.enabled", checked)

    def _on_replaced(self, _config: object) -> None:
        with signals_blocked(self):
            self.setChecked(bool(self.model.get(f"{self.section}.enabled")))
        self.binder.refresh()

    def show_problems(self, problems: Sequence[ConfigProblem]) -> None:
        """Show ``problems`` inline (an empty list hides the error line)."""
        text = all_in_user_words(problems)
        self.error_label.setText(breakable(text))  # a long word wraps instead of widening the card
        self.error_label.setToolTip(text)
        self.error_label.setVisible(bool(problems))

    def set_choices(self, choices: ModelChoices) -> None:
        """Offer freshly listed model names (after Models > Refresh)."""

    def shutdown(self) -> None:
        """Finish the card's background work (the window calls it when it closes)."""


def _size_text(size: tuple[int, int]) -> str:
    return f"Final size: {size[0]} × {size[1]}"


class Txt2ImgCard(StageCard):
    """txt2img with its collapsible SDXL Refiner and Hires fix sections."""

    def __init__(self, model: ConfigModel, choices: ModelChoices, parent: QWidget | None = None) -> None:
        super().__init__(model, "txt2img", "txt2img", parent)
        self._parked: list[str] = []
        b, f = self.binder, self.form
        self.checkpoint = b.combo(
            "txt2img.model",
            choices.checkpoints,
            tip("The checkpoint to sample with.", "Stable Diffusion checkpoint"),
            editable=True,
        )
        f.addRow("Model", self.checkpoint)
        self.vae = b.combo(
            "txt2img.vae",
            choices.vaes,
            tip("A separate VAE, or the checkpoint's own.", "SD VAE"),
            editable=True,
            none_text="Automatic",
        )
        f.addRow("VAE", self.vae)
        f.addRow(
            "Sampler", b.combo("txt2img.sampler", SAMPLERS, tip("The sampling method.", "Sampling method"))
        )
        f.addRow(
            "Schedule", b.combo("txt2img.scheduler", SCHEDULERS, tip("Noise schedule.", "Schedule type"))
        )
        f.addRow("Steps", b.spin("txt2img.steps", 1, 150, tip("Denoising steps.", "Sampling steps")))
        f.addRow(
            "CFG",
            b.dspin("txt2img.cfg_scale", 0, 30, tip("How closely to follow the prompt.", "CFG Scale"), 0.5),
        )
        size = QHBoxLayout()
        size.addWidget(b.spin("txt2img.width", 64, 4096, tip("Image width, a multiple of 8.", "Width"), 8))
        size.addWidget(QLabel("×"))
        size.addWidget(b.spin("txt2img.height", 64, 4096, tip("Image height, a multiple of 8.", "Height"), 8))
        self.presets = narrow(QComboBox(), 8)
        self.presets.setObjectName("txt2img.size_preset")
        self.presets.setToolTip("Common sizes for SD 1.5 and SDXL")
        self.presets.addItem("Presets…")
        self.presets.addItems([name for name, _, _ in SIZE_PRESETS])
        self.presets.activated.connect(self._on_presets_activated)
        size.addWidget(self.presets)
        f.addRow("Size", size)
        f.addRow("Clip skip", b.spin("txt2img.clip_skip", 1, 12, tip("Skip last CLIP layers.", "Clip skip")))
        self.vbox = self.layout()
        assert isinstance(self.vbox, QVBoxLayout)
        self.refiner_section = self._refiner_section(choices)
        self.hires_section = self._hires_section(choices)
        self.vbox.addWidget(self.refiner_section)
        self.vbox.addWidget(self.hires_section)
        self._checkpoint = self.model.config.txt2img.model
        model.changed.connect(self._on_model_changed)
        model.replaced.connect(self._on_model_changed)  # the final size after a restore too
        self._on_model_changed("")

    def _refiner_section(self, choices: ModelChoices) -> QCollapsible:
        b = self.binder
        section = QCollapsible("SDXL Refiner")
        section.setObjectName("txt2img.refiner_section")
        body = QWidget()
        form = QFormLayout(body)
        form.addRow(
            b.check("txt2img.refiner_enabled", "Use a refiner", tip("Finish with a refiner.", "Refiner"))
        )
        self.refiner = b.combo(
            "txt2img.refiner_model_name",
            choices.checkpoints,
            tip("The refiner checkpoint.", "Refiner checkpoint"),
            editable=True,
            none_text="",
        )
        form.addRow("Refiner model", self.refiner)
        form.addRow(
            "Switch at",
            b.dspin(
                "txt2img.refiner_switch_at",
                0.01,
                0.99,
                tip("Fraction of steps before switching.", "Switch at"),
            ),
        )
        section.addWidget(body)
        return section

    def _hires_section(self, choices: ModelChoices) -> QCollapsible:
        b = self.binder
        section = QCollapsible("Hires fix")
        section.setObjectName("txt2img.hires_section")
        body = QWidget()
        form = QFormLayout(body)
        form.addRow(
            b.check("txt2img.hires_enabled", "Hires fix", tip("Upscale, then denoise again.", "Hires. fix"))
        )
        form.addRow(
            "Upscaler",
            b.combo(
                "txt2img.hires_upscaler_name",
                HIRES_UPSCALERS,
                tip("How to enlarge first.", "Upscaler"),
                editable=True,
            ),
        )
        form.addRow(
            "Upscale by",
            b.dspin("txt2img.hires_upscale_factor", 1, 8, tip("Scale factor.", "Upscale by"), 0.25),
        )
        resize = QHBoxLayout()
        resize.addWidget(
            b.spin("txt2img.hires_resize_width", 0, 8192, tip("0: use the factor.", "Resize width to"), 8)
        )
        resize.addWidget(
            b.spin("txt2img.hires_resize_height", 0, 8192, tip("0: use the factor.", "Resize height to"), 8)
        )
        form.addRow("Resize to", resize)
        form.addRow(
            "Hires steps", b.spin("txt2img.hires_steps", 0, 150, tip("0: same as steps.", "Hires steps"))
        )
        form.addRow(
            "Denoise",
            b.dspin("txt2img.hires_denoise", 0, 1, tip("How much to change.", "Denoising strength")),
        )
        self.hires_checkpoint = b.combo(
            "txt2img.hires_checkpoint",
            choices.checkpoints,
            tip("The checkpoint of the hires pass (same family).", "Hires checkpoint"),
            editable=True,
            none_text=SAME_CHECKPOINT,
        )
        form.addRow("Hires checkpoint", self.hires_checkpoint)
        form.addRow(
            "Hires sampler",
            b.combo(
                "txt2img.hires_sampler",
                SAMPLERS,
                tip("The sampler of the hires pass.", "Hires sampling method"),
                none_text=SAME_SAMPLER,
            ),
        )
        form.addRow(
            "Hires schedule",
            b.combo(
                "txt2img.hires_scheduler",
                SCHEDULERS,
                tip("The schedule type of the hires pass.", "Hires schedule type"),
                none_text=SAME_SCHEDULER,
            ),
        )
        form.addRow(self._hires_prompts())
        self.final_size = QLabel()
        self.final_size.setObjectName("txt2img.final_size")
        form.addRow(self.final_size)
        section.addWidget(body)
        return section

    def _hires_prompts(self) -> QCollapsible:
        """A1111's hires prompt and negative prompt, collapsed: empty means the first pass's."""
        b = self.binder
        section = QCollapsible("Hires prompt")
        section.setObjectName("txt2img.hires_prompt_section")
        body = QWidget()
        form = QFormLayout(body)
        prompt = b.text("txt2img.hires_prompt", tip("Empty: the main prompt.", "Hires prompt"))
        prompt.setPlaceholderText("Same as the main prompt")
        prompt.setMaximumHeight(60)
        form.addRow("Prompt", prompt)
        negative = b.text(
            "txt2img.hires_negative_prompt", tip("Empty: the main negative prompt.", "Hires negative prompt")
        )
        negative.setPlaceholderText("Same as the main negative prompt")
        negative.setMaximumHeight(60)
        form.addRow("Negative", negative)
        section.addWidget(body)
        return section

    #: The sections that run inside txt2img (issue 17, item 5).
    INNER = ("txt2img.refiner_enabled", "txt2img.hires_enabled")

    def _on_toggled(self, checked: bool) -> None:
        # Unticking the card greys out the refiner and hires checkboxes, so they could not be
        # turned off when the sequencer says they need txt2img: they are parked off with the
        # card and come back when it is ticked again.
        if not checked:
            self._parked = [path for path in self.INNER if self.model.get(path)]
            for path in self._parked:
                self.model.set(path, False)
        super()._on_toggled(checked)
        if checked:
            for path in self._parked:
                self.model.set(path, True)
            self._parked = []

    def _on_presets_activated(self, index: int) -> None:
        if index > 0:
            _, width, height = SIZE_PRESETS[index - 1]
            self.model.set("txt2img.width", width)
            self.model.set("txt2img.height", height)
            self.binder.refresh()
        self.presets.setCurrentIndex(0)

    def _on_model_changed(self, change: object) -> None:
        t2i: Txt2ImgConfig = self.model.config.txt2img
        if change == "txt2img.model":
            self._offer_family_size(t2i)
            t2i = self.model.config.txt2img
        self._checkpoint = t2i.model
        size = hires_target_size(t2i) if t2i.hires_enabled else (t2i.width, t2i.height)
        self.final_size.setText(_size_text(size))
        self.hires_section.setText(hires_title(t2i))
        self.refiner_section.setText(refiner_title(t2i))

    def _offer_family_size(self, t2i: Txt2ImgConfig) -> None:
        size = family_size_after(self._checkpoint, t2i.model, (t2i.width, t2i.height))
        if size is not None:
            self.model.set("txt2img.width", size[0])
            self.model.set("txt2img.height", size[1])

    def set_choices(self, choices: ModelChoices) -> None:
        set_items(self.checkpoint, choices.checkpoints)
        set_items(self.vae, choices.vaes, keep_first=1)
        set_items(self.refiner, choices.checkpoints, keep_first=1)
        set_items(self.hires_checkpoint, choices.checkpoints, keep_first=1)


class Img2ImgCard(StageCard):
    """img2img on the previous stage's images, or on the input image when it comes first."""

    def __init__(self, model: ConfigModel, choices: ModelChoices, parent: QWidget | None = None) -> None:
        super().__init__(model, "img2img", "img2img", parent)
        b, f = self.binder, self.form
        self.checkpoint = b.combo(
            "img2img.model",
            choices.checkpoints,
            tip(
                "The checkpoint for img2img; needed when img2img comes first (txt2img off).",
                "Stable Diffusion checkpoint",
            ),
            editable=True,
            none_text="Same as txt2img",
        )
        f.addRow("Model", self.checkpoint)
        f.addRow(
            "Denoise", b.dspin("img2img.denoise", 0, 1, tip("How much to change.", "Denoising strength"))
        )
        f.addRow("Steps", b.spin("img2img.steps", 1, 150, tip("Denoising steps.", "Sampling steps")))
        f.addRow("CFG", b.dspin("img2img.cfg_scale", 0, 30, tip("Prompt adherence.", "CFG Scale"), 0.5))
        f.addRow(
            "Sampler",
            b.combo(
                "img2img.sampler",
                SAMPLERS,
                tip("Empty: txt2img's.", "Sampling method"),
                none_text="Same as txt2img",
            ),
        )
        f.addRow(
            "Noise multiplier",
            b.dspin(
                "img2img.noise_multiplier",
                0,
                1.5,
                tip("Scales the noise added to the input image; 1 = off.", "Noise multiplier for img2img"),
                0.01,
            ),
        )
        prompt = b.text(
            "img2img.prompt", tip("Empty: the main prompt.", "Prompt (img2img tab)"), empty_is_none=True
        )
        prompt.setPlaceholderText("Same as the main prompt")
        prompt.setMaximumHeight(60)
        f.addRow("Prompt override", prompt)
        negative = b.text(
            "img2img.negative_prompt",
            tip("Empty: the main negative prompt.", "Negative prompt (img2img tab)"),
            empty_is_none=True,
        )
        negative.setPlaceholderText("Same as the main negative prompt")
        negative.setMaximumHeight(60)
        f.addRow("Negative override", negative)
        self.inpaint = InpaintSection(model, b)
        f.addRow(self.inpaint)

    def set_choices(self, choices: ModelChoices) -> None:
        set_items(self.checkpoint, choices.checkpoints, keep_first=1)

    def shutdown(self) -> None:
        self.inpaint.shutdown()


class _Reading(Enum):
    """The upscale card's input size while it is being read (or a read skipped as superseded)."""

    READING = "reading"


_READING = _Reading.READING
_Size = tuple[int, int] | _Reading | None


class UpscaleCard(StageCard):
    """Standalone pixel upscale (A1111 Extras) with a live final-size readout.

    The input image's size is read on the card's own worker thread: the readout says
    "Final size: …" until it arrives, and an answer for a path no longer chosen is dropped.
    """

    #: The input image's size arrived: (path, (width, height), or None when it cannot be read).
    sizeRead = Signal(str, object)

    def __init__(self, model: ConfigModel, choices: ModelChoices, parent: QWidget | None = None) -> None:
        super().__init__(model, "upscale", "Upscale", parent)
        b, f = self.binder, self.form
        self.upscaler = b.combo(
            "upscale.upscale_model",
            BUILTIN_UPSCALERS + choices.upscalers,
            tip("Upscaler model.", "Upscaler 1"),
            editable=True,
        )
        f.addRow("Upscaler", self.upscaler)
        f.addRow("Scale by", b.dspin("upscale.upscale_factor", 1, 8, tip("Scale factor.", "Scale by"), 0.25))
        self.final_size = QLabel()
        self.final_size.setObjectName("upscale.final_size")
        f.addRow(self.final_size)
        self._reader = Background(self)
        # The input path whose size is known or being read, and that size (_READING meanwhile).
        self._input_size: tuple[str | None, _Size] = (None, None)
        model.changed.connect(self._on_model_changed)
        model.replaced.connect(self._on_model_changed)
        self._on_model_changed("")

    def _source_size(self) -> _Size:
        config = self.model.config
        if config.txt2img.enabled:
            return txt2img_output_size(config.txt2img)
        path = config.input_image_path
        if self._input_size[0] != path:
            self._input_size = (path, _READING if path else None)
            if path:
                self._reader.run(
                    lambda: _image_size(path) if path == self._input_size[0] else _READING,
                    lambda size: self._on_size_read(path, size),
                    lambda _message: self._on_size_read(path, None),
                )
        return self._input_size[1]

    def _on_size_read(self, path: str, size: _Size) -> None:
        if path != self._input_size[0] or size is _READING:
            return  # superseded by a later path
        self._input_size = (path, size)
        self._on_model_changed("")
        self.sizeRead.emit(path, size)

    def _on_model_changed(self, _change: object) -> None:
        size = self._source_size()
        factor = self.model.config.upscale.upscale_factor
        if size is _READING:
            text = "Final size: …"
        elif isinstance(size, tuple):
            text = _size_text(upscaled_size(*size, factor))
        else:
            text = "Final size: (input image)"
        self.final_size.setText(text)

    def set_choices(self, choices: ModelChoices) -> None:
        set_items(self.upscaler, BUILTIN_UPSCALERS + choices.upscalers)

    def wait(self, msecs: int = 10_000) -> bool:
        """Wait for the size reads asked so far (tests)."""
        return self._reader.wait(msecs)

    def shutdown(self) -> None:
        self._reader.shutdown()


def _image_size(path: str) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError):
        return None
