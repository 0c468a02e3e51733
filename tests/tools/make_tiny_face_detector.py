"""Train the tiny face detector the ADetailer tests use (committed as ``tests/data/face_tiny.pt``).

A random-weight YOLO detects nothing at ADetailer's confidence 0.3 (its scores stay near the head's
initial class bias), so tests that need detections need a trained model. This script draws 200
synthetic 128 px images of faces (skin-coloured ellipses with eyes, nose and mouth, some with hair,
on noisy backgrounds with distractor shapes, labels in YOLO format), trains yolov8n scaled down to
width 0.125 from its yaml (no pretrained weights, so nothing is downloaded) for 25 epochs on the
CPU with a fixed seed, and writes the best weights.

Usage::

    python tests/tools/make_tiny_face_detector.py OUT.pt

Measured for the committed file (2-core x86_64 CPU, torch 2.14.1, ultralytics 8.4.190): training
takes 49-64 s (three runs gave bit-identical weights), the file is 1.99 MB
(910k parameters, fp16). On 24 fresh images (seeds 10000-10023, 1-3 faces, 128-256 px a side,
conf 0.3) it finds 50 of 52 faces with IoU > 0.5 (recall 0.962) at mean confidence 0.755, with
1 false positive; the two misses are the smallest faces of crowded images. It predicts at the
``imgsz`` 128 stored in the checkpoint, so faces must be drawn at about the training scale (a
fifth to a half of the longer side). With one class, a random-weight model scores about 0.01.

The tests import ``draw_faces_image``/``random_scene``/``evaluation_scenes`` to draw images with
faces at known boxes, and ``match``/``iou`` to score detections.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

Box = tuple[float, float, float, float]

IMAGE_SIZE = 128
TRAIN_IMAGES = 200
VAL_IMAGES = 16
EPOCHS = 25
WIDTH_MULTIPLE = 0.125  # yolov8n is 0.25
EVAL_IMAGES = 24
EVAL_CONFIDENCE = 0.3

_SKIN = ((255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 205, 180))
_HAIR = ((20, 15, 10), (90, 56, 37), (180, 140, 80), (60, 40, 30), (200, 200, 200))


# -- drawing -----------------------------------------------------------------------------------


def random_faces(size: tuple[int, int], count: int, seed: int) -> list[Box]:
    """Up to ``count`` non-overlapping face boxes (x1, y1, x2, y2) in an image of ``size``.

    Faces are 20-45 % of the longer side tall (at most 95 % of the shorter side) and 75-90 % as
    wide as tall: the scale the detector was trained on once ultralytics letterboxes the image.
    """
    rng = random.Random(seed)
    width, height = size
    faces: list[Box] = []
    for _ in range(count * 30):
        if len(faces) == count:
            break
        h = min(max(size) * rng.uniform(0.2, 0.45), min(size) * 0.95)
        w = h * rng.uniform(0.75, 0.9)
        x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
        box = (round(x1), round(y1), round(x1 + w), round(y1 + h))
        if all(_gap(box, other) for other in faces):
            faces.append(box)
    return faces


def _gap(a: Box, b: Box) -> bool:
    margin = 2
    return a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1]


def draw_faces_image(size: int | tuple[int, int], faces: Sequence[Box], seed: int) -> Image.Image:
    """An RGB image of ``size`` with a drawn face filling each box of ``faces`` (x1, y1, x2, y2).

    The background is a noisy colour gradient with 2-5 distractor shapes (some skin-coloured
    blobs without features) that keep clear of the faces, and light noise over everything.
    """
    width, height = (size, size) if isinstance(size, int) else size
    rng = random.Random(seed)
    image = _background(width, height, rng)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(2, 5)):
        _distractor(draw, width, height, faces, rng)
    for box in faces:
        _face(draw, box, rng)
    return _add_noise(image, rng, sigma=rng.uniform(2.0, 7.0))


def _background(width: int, height: int, rng: random.Random) -> Image.Image:
    start = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)
    end = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)
    angle = rng.uniform(0, math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (xs * math.cos(angle) + ys * math.sin(angle)) / max(width, height)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    pixels = start + (end - start) * t[..., None]
    return _add_noise(Image.fromarray(pixels.clip(0, 255).astype(np.uint8)), rng, sigma=rng.uniform(5, 20))


def _add_noise(image: Image.Image, rng: random.Random, sigma: float) -> Image.Image:
    noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, sigma, (image.height, image.width, 3))
    pixels = np.asarray(image, dtype=np.float32) + noise
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def _distractor(
    draw: ImageDraw.ImageDraw, width: int, height: int, faces: Sequence[Box], rng: random.Random
) -> None:
    side = min(width, height)
    for _ in range(20):  # a place clear of every face, or no distractor
        w, h = side * rng.uniform(0.1, 0.45), side * rng.uniform(0.1, 0.45)
        x, y = rng.uniform(-w / 2, width - w / 2), rng.uniform(-h / 2, height - h / 2)
        box = (x, y, x + w, y + h)
        if all(_gap(box, face) for face in faces):
            break
    else:
        return
    skin_blob = rng.random() < 0.25
    colour = _jitter(rng.choice(_SKIN), rng) if skin_blob else tuple(rng.randint(0, 255) for _ in range(3))
    kind = "ellipse" if skin_blob else rng.choice(("ellipse", "rectangle", "polygon", "line"))
    if kind == "ellipse":
        draw.ellipse(box, fill=colour)
    elif kind == "rectangle":
        draw.rectangle(box, fill=colour)
    elif kind == "polygon":
        draw.polygon([(rng.uniform(x, x + w), rng.uniform(y, y + h)) for _ in range(3)], fill=colour)
    else:
        draw.line(box, fill=colour, width=max(1, round(side * 0.03)))


def _jitter(colour: tuple[int, int, int], rng: random.Random, amount: int = 12) -> tuple[int, int, int]:
    r, g, b = (min(255, max(0, c + rng.randint(-amount, amount))) for c in colour)
    return r, g, b


def _face(draw: ImageDraw.ImageDraw, box: Box, rng: random.Random) -> None:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    skin = _jitter(rng.choice(_SKIN), rng)
    shade = tuple(max(0, c - 45) for c in skin)
    draw.ellipse(box, fill=skin, outline=shade)
    if rng.random() < 0.5:  # hair: a cap over the top of the head
        draw.chord((x1, y1, x2, y1 + 0.6 * h), 180, 360, fill=rng.choice(_HAIR))
    eye_y = y1 + h * rng.uniform(0.38, 0.46)
    for eye_x in (x1 + 0.32 * w, x1 + 0.68 * w):
        rx, ry = 0.1 * w, 0.055 * h
        draw.ellipse((eye_x - rx, eye_y - ry, eye_x + rx, eye_y + ry), fill=(245, 245, 245))
        pupil = 0.045 * w
        draw.ellipse((eye_x - pupil, eye_y - pupil, eye_x + pupil, eye_y + pupil), fill=(30, 20, 20))
    cx = x1 + w / 2
    draw.line((cx, y1 + 0.48 * h, cx, y1 + 0.6 * h), fill=shade, width=max(1, round(w * 0.04)))
    mouth_y = y1 + h * rng.uniform(0.7, 0.76)
    mouth = (cx - 0.2 * w, mouth_y - 0.06 * h, cx + 0.2 * w, mouth_y + 0.06 * h)
    colour = _jitter((170, 40, 50), rng, 30)
    if rng.random() < 0.5:
        draw.ellipse(mouth, fill=colour)
    else:
        draw.arc(mouth, 0, 180, fill=colour, width=max(1, round(h * 0.035)))


# -- dataset and training ----------------------------------------------------------------------


def random_scene(
    seed: int, size: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE)
) -> tuple[Image.Image, list[Box]]:
    """An image of ``size`` with 1-3 faces at random places, and their boxes."""
    faces = random_faces(size, random.Random(seed).randint(1, 3), seed)
    return draw_faces_image(size, faces, seed), faces


def write_split(root: Path, split: str, count: int, first_seed: int) -> None:
    """``count`` images under ``root/images/split`` with YOLO labels under ``root/labels/split``."""
    images, labels = root / "images" / split, root / "labels" / split
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for index in range(count):
        image, faces = random_scene(first_seed + index)
        image.save(images / f"{index:04d}.png")
        rows = [_yolo_row(face, image.size) for face in faces]
        (labels / f"{index:04d}.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")


def _yolo_row(box: Box, size: tuple[int, int]) -> str:
    x1, y1, x2, y2 = box
    width, height = size
    cx, cy, w, h = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height
    return f"0 {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def write_dataset(root: Path, train_images: int = TRAIN_IMAGES) -> Path:
    """The synthetic dataset under ``root``; returns its ultralytics ``data.yaml``."""
    write_split(root, "train", train_images, first_seed=0)
    write_split(root, "val", VAL_IMAGES, first_seed=5_000)
    data = root / "data.yaml"
    data.write_text(
        f"path: {root.as_posix()}\ntrain: images/train\nval: images/val\nnames:\n  0: face\n",
        encoding="utf-8",
    )
    return data


def write_model_yaml(folder: Path) -> Path:
    """yolov8n's architecture with one class and width multiple 0.125, as a yaml file in ``folder``."""
    import ultralytics
    from ultralytics.utils import YAML as yaml_io

    yaml: Any = yaml_io  # untyped
    spec: dict[str, Any] = yaml.load(Path(ultralytics.__file__).parent / "cfg/models/v8/yolov8.yaml")
    spec["nc"] = 1
    spec["scales"] = {"n": [0.33, WIDTH_MULTIPLE, 1024]}
    path = folder / "yolov8n-tinyface.yaml"  # the "n" in the name picks the scale
    yaml.save(path, spec)
    return path


def train(out: Path, workdir: Path, epochs: int = EPOCHS, train_images: int = TRAIN_IMAGES) -> Path:
    """Train the tiny face detector in ``workdir`` and copy its best weights to ``out``."""
    from stablenew_qt.engine.adetailer.detector import configure_ultralytics

    configure_ultralytics(workdir / "ultralytics-config")
    from ultralytics.models import YOLO

    data = write_dataset(workdir / "dataset", train_images)
    model = YOLO(str(write_model_yaml(workdir)))
    model.train(
        data=str(data),
        epochs=epochs,
        imgsz=IMAGE_SIZE,
        batch=16,
        workers=0,
        device="cpu",
        amp=False,
        plots=False,
        seed=0,
        deterministic=True,
        pretrained=False,
        val=False,
        project=str(workdir / "runs"),
        name="face",
        exist_ok=True,
        verbose=False,
    )
    trainer = model.trainer
    assert trainer is not None
    best = Path(trainer.best) if Path(trainer.best).is_file() else Path(trainer.last)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best, out)
    return out


# -- evaluation --------------------------------------------------------------------------------


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def evaluation_scenes(
    count: int = EVAL_IMAGES, first_seed: int = 10_000
) -> list[tuple[Image.Image, list[Box]]]:
    """Fresh images (seeds unused in training), 128-256 px a side, with 1-3 faces each."""
    scenes = []
    for seed in range(first_seed, first_seed + count):
        rng = random.Random(seed)
        size = (rng.randint(128, 256), rng.randint(128, 256))
        scenes.append(random_scene(seed, size))
    return scenes


def match(truth: Sequence[Box], found: Sequence[tuple[Box, float]]) -> list[float]:
    """Confidences of the found boxes matched one-to-one to a true box with IoU > 0.5."""
    left = list(found)
    matched: list[float] = []
    for box in truth:
        best = max(left, key=lambda item: iou(box, item[0]), default=None)
        if best is not None and iou(box, best[0]) > 0.5:
            left.remove(best)
            matched.append(best[1])
    return matched


def evaluate(weights: Path, count: int = EVAL_IMAGES) -> tuple[float, float, int]:
    """(recall, mean confidence of the matches, false positives) on ``count`` fresh images."""
    from ultralytics.models import YOLO

    model: Any = YOLO(str(weights))  # results are typed loosely; read them as Any
    faces = extra = 0
    confidences: list[float] = []
    for image, truth in evaluation_scenes(count):
        result = model.predict(image, conf=EVAL_CONFIDENCE, device="cpu", verbose=False)[0]
        boxes = result.boxes
        found: list[tuple[Box, float]] = [
            ((b[0], b[1], b[2], b[3]), float(c))
            for b, c in zip(boxes.xyxy.tolist(), boxes.conf.tolist(), strict=True)
        ]
        matched = match(truth, found)
        faces += len(truth)
        extra += len(found) - len(matched)
        confidences += matched
    return len(confidences) / faces, sum(confidences) / max(1, len(confidences)), extra


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``make_tiny_face_detector.py OUT.pt`` trains, writes OUT.pt and prints its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where to write the weights (.pt)")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--images", type=int, default=TRAIN_IMAGES, help="training images")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tiny-face-") as workdir:
        started = time.perf_counter()
        train(args.out, Path(workdir), args.epochs, args.images)
        seconds = time.perf_counter() - started
        recall, confidence, extra = evaluate(args.out)
    size_mb = args.out.stat().st_size / 1e6
    print(f"trained in {seconds:.0f} s; {args.out} is {size_mb:.2f} MB")
    print(f"recall {recall:.3f} (IoU > 0.5), mean confidence {confidence:.3f}, {extra} false positives")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
    sys.exit(main())
