"""An ultralytics ``YOLO`` built from a checkpoint read by the restricted loader, never by ``torch.load``.

``yolo_from_checkpoint`` takes the bytes of a detector file (the same bytes the trust list hashed),
builds its objects with ``checkpoint_policy.read_checkpoint`` and then does what ultralytics'
``load_checkpoint`` does after ``torch.load`` (ultralytics 8.4 ``nn/tasks.py``): take ``ema`` or
``model``, convert to float32, attach ``args`` (defaults overlaid with ``train_args``), ``pt_path``,
``task`` and a default ``stride``, switch to eval mode and set every module's ``inplace``. The
model then goes into a ``YOLO`` whose ``_load`` installs it instead of reading the file, so
ultralytics' predictor, fusing and result handling run unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelError
from .checkpoint_policy import read_checkpoint
from .restricted_pickle import PickleRefused
from .torch_archive import ArchiveRefused


class NotADetectorError(ModelError):
    """The file is a valid checkpoint of something other than an ultralytics detection model."""


def yolo_from_checkpoint(data: bytes, path: Path) -> Any:
    """An ultralytics ``YOLO`` for the checkpoint bytes ``data`` of the file ``path`` (named in errors).

    Raises ``ModelError`` (one line, naming the file) for anything the restricted loader refuses and
    ``NotADetectorError`` for a checkpoint without an ultralytics model. Nothing in the file runs.
    """
    try:
        root = read_checkpoint(data)
    except (ArchiveRefused, PickleRefused) as exc:
        raise ModelError(f"refusing to load detector {path.name}: {exc}") from None
    checkpoint, model, train_args = _model_and_args(root, path.name)
    try:
        _prepare(model, train_args, path)
        return _wrap(model, checkpoint, path)
    except Exception as exc:  # ultralytics' own code on a model tree it does not expect
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot use detector {path.name}: {reason}") from exc


def _model_and_args(root: object, name: str) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    from ultralytics.nn.tasks import BaseModel

    if not isinstance(root, dict):
        raise NotADetectorError(
            f"{name} is not a detection or segmentation model: it holds no checkpoint dict"
        )
    ema, model = root.get("ema"), root.get("model")
    model = ema if ema is not None else model
    if not isinstance(model, BaseModel):
        raise NotADetectorError(
            f"{name} is not a detection or segmentation model: it holds no ultralytics YOLO model "
            "(a bare state dict or another kind of file)"
        )
    if root.get("modelopt"):  # ultralytics would re-apply quantization-aware training through NVIDIA modelopt
        raise ModelError(
            f"refusing to load detector {name}: quantization-aware checkpoints are not supported"
        )
    train_args = root.get("train_args", {})
    if not isinstance(train_args, dict) or not all(type(key) is str for key in train_args):
        raise ModelError(f"refusing to load detector {name}: its train_args are not a dict of settings")
    return root, model, train_args


def _prepare(model: Any, train_args: dict[str, Any], path: Path) -> None:
    import torch
    from ultralytics.utils import DEFAULT_CFG_DICT

    model.float()
    model.args = {**DEFAULT_CFG_DICT, **train_args}
    model.pt_path = str(path)
    # ultralytics: getattr(model, "task", guess_model_task(model)), and with args set as above the
    # guess is always args["task"] (it evals "model.args" first); done here without the eval.
    try:
        model.task = model.task
    except AttributeError:
        model.task = model.args["task"]
    if not hasattr(model, "stride"):
        model.stride = torch.tensor([32.0])
    model.eval()
    for module in model.modules():
        if hasattr(module, "inplace"):
            module.inplace = True
        elif isinstance(module, torch.nn.Upsample) and not hasattr(module, "recompute_scale_factor"):
            module.recompute_scale_factor = None


def _wrap(model: Any, checkpoint: dict[str, Any], path: Path) -> Any:
    from ultralytics.models import YOLO

    class _LoadedYOLO(YOLO):
        """``YOLO`` whose ``_load`` installs the model already read, as ``Model._load`` would."""

        def _load(self, weights: str, task: str | None = None) -> None:
            self.model, self.ckpt = model, checkpoint
            self.task = model.task
            self.overrides = model.args = self._reset_ckpt_args(model.args)
            self.ckpt_path = model.pt_path
            self.overrides["model"] = weights
            self.overrides["task"] = self.task
            self.model_name = weights

    # A ".pt" name: YOLO builds models from ".yaml" names, whatever the file holds.
    return _LoadedYOLO(str(path.with_suffix(".pt")))
