"""ConfigModel: the window's one editable RunConfig, validated as the user types.

Every widget writes its knob here with :meth:`ConfigModel.set` (a dotted path such as
``"txt2img.steps"`` or ``"adetailer.units.0.adetailer_model"``); the model rebuilds the RunConfig
with ``RunConfig.from_dict`` and runs the StageSequencer (``check_files=False``, plus a stat of the
input image) on every change.
Widgets listen to :attr:`ConfigModel.replaced` to show a whole new config (restored settings,
"use these settings", a dropped PNG).
"""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtCore import QObject, Signal

from ..core.config import RunConfig
from ..core.errors import ConfigError, ConfigProblem, shorten
from ..core.files import FileRefused, regular_file_size, user_path
from ..core.sequencer import StageExecutionPlan, StageSequencer


def _split(path: str) -> list[str | int]:
    return [int(part) if part.isdigit() else part for part in path.split(".")]


def section_of(problem: ConfigProblem) -> str:
    """The card a problem belongs to: ``"txt2img"``, ``"img2img"``, ``"upscale"``, ``"adetailer"``,
    ``"input"`` (the input image) or ``"prompt"`` (prompt, seed, batch and anything global)."""
    head = problem.field.split(".", 1)[0].split("[", 1)[0]
    if head in ("txt2img", "img2img", "upscale", "adetailer"):
        return head
    return "input" if head == "input_image_path" else "prompt"


def _check_input_exists(path: str | None) -> None:
    """A quick stat (no decoding, unlike the check before a run): a missing input file is shown as
    the user types, not only when Generate is pressed. Never opens the file (it may be a FIFO)."""
    if not path:
        return
    try:
        regular_file_size(user_path(path))
    except FileRefused as exc:
        raise ConfigError(
            f"{shorten(path)!r}: {exc}; choose an existing image file", "input_image_path"
        ) from None


def _editable(config: RunConfig) -> RunConfig:
    """``config`` without a wildcard template: the editor's prompt is the one it shows, and an
    edited prompt must not claim the template of the job it came from."""
    if config.prompt_template is None and config.negative_prompt_template is None:
        return config
    return config.model_copy(update={"prompt_template": None, "negative_prompt_template": None})


class ConfigModel(QObject):
    """Holds the raw settings the widgets edit and the last valid RunConfig made from them.

    ``error`` is the ConfigError that stands now (a bad value or an impossible stage structure),
    or None; ``config`` is the last config that validated, and ``plan`` its stage plan.
    """

    #: A knob changed (the path that changed).
    changed = Signal(str)
    #: The whole config was replaced (widgets must re-read every value).
    replaced = Signal(object)
    #: The standing error changed: a ConfigError, or None once the config is valid again.
    validityChanged = Signal(object)

    def __init__(self, config: RunConfig | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sequencer = StageSequencer()
        self._config = _editable(config or RunConfig())
        self._data: dict[str, Any] = self._config.model_dump(mode="json")
        self._plan: StageExecutionPlan | None = None
        self._error: ConfigError | None = None
        self._validate()

    @property
    def config(self) -> RunConfig:
        """The last value that passed ``RunConfig.from_dict`` (what Generate runs when ``error`` is None)."""
        return self._config

    @property
    def error(self) -> ConfigError | None:
        return self._error

    @property
    def plan(self) -> StageExecutionPlan | None:
        return self._plan

    def get(self, path: str) -> Any:
        """The raw value at ``path`` (what the user typed, valid or not)."""
        node: Any = self._data
        for part in _split(path):
            node = node[part]
        return node

    def set(self, path: str, value: Any) -> None:
        """Write one knob and re-validate. Unchanged values emit nothing."""
        parts = _split(path)
        node: Any = self._data
        for part in parts[:-1]:
            node = node[part]
        if node[parts[-1]] == value and type(node[parts[-1]]) is type(value):
            return
        node[parts[-1]] = value
        self._validate()
        self.changed.emit(path)

    def set_units(self, units: list[dict[str, Any]]) -> None:
        """Replace the ADetailer unit list (adding or removing a tab)."""
        self._data["adetailer"]["units"] = copy.deepcopy(units)
        self._validate()
        self.changed.emit("adetailer.units")

    def replace(self, config: RunConfig) -> None:
        """Show a whole new config (restored, from an image, or loaded)."""
        config = _editable(config)
        self._data = config.model_dump(mode="json")
        self._validate()
        self.replaced.emit(config)

    def _validate(self) -> None:
        before = str(self._error) if self._error else None
        try:
            config = RunConfig.from_dict(copy.deepcopy(self._data))
            self._config = config  # a valid value even when its stage structure cannot run
            self._plan = self._sequencer.build_execution_plan(config, check_files=False)
            _check_input_exists(self._plan.input_image_path)
            self._error = None
        except ConfigError as exc:
            self._plan, self._error = None, exc
        if (str(self._error) if self._error else None) != before:
            self.validityChanged.emit(self._error)
