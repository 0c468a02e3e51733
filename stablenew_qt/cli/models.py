"""``stablenew-qt models``: the models found, by kind, checkpoints with their family (and hashes)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from ..core.options import ExitCode
from .engine_options import add_engine_options, engine_settings

if TYPE_CHECKING:
    from ..core.extra_networks import ExtraNetworksCatalog
    from ..engine.models import ModelCatalog, ModelEntry


def add_parser(subparsers: Any) -> None:
    models = subparsers.add_parser("models", help="list the models found, with family and hash")
    models.add_argument(
        "--hashes", action="store_true", help="also compute model hashes (reads every file once)"
    )
    add_engine_options(models)
    models.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from ..core.extra_networks import ExtraNetworksCatalog
    from ..engine.executor import build_catalog

    settings = engine_settings(args)
    listing = catalog_listing(build_catalog(settings), hashes=args.hashes)
    listing.update(extra_networks_listing(ExtraNetworksCatalog(settings.models_dir), hashes=args.hashes))
    print(json.dumps(listing, indent=2, ensure_ascii=False))
    return ExitCode.OK


def catalog_listing(catalog: ModelCatalog, *, hashes: bool) -> dict[str, list[dict[str, object]]]:
    """Every discovered model by kind; checkpoints with their family (read from headers only)."""
    from ..engine.errors import ModelError
    from ..engine.family import detect_family
    from ..engine.hashing import model_hash

    def describe(entry: ModelEntry) -> dict[str, object]:
        path = entry.path
        row: dict[str, object] = {
            "name": entry.name,
            "source": entry.source,
            "path": str(path) if path else None,
        }
        if entry.kind == "checkpoint" and path is not None:
            try:
                row["family"] = detect_family(path).value
            except ModelError as exc:
                row["family"] = f"unknown ({exc})"
        if hashes and path is not None and path.is_file():
            row["hash"] = model_hash(path)
        return row

    return {
        "checkpoints": [describe(e) for e in catalog.checkpoints()],
        "vaes": [describe(e) for e in catalog.vaes()],
        "upscalers": [describe(e) for e in catalog.upscalers()],
        "detectors": [describe(e) for e in catalog.detectors()],
    }


def extra_networks_listing(
    catalog: ExtraNetworksCatalog, *, hashes: bool
) -> dict[str, list[dict[str, object]]]:
    """Every LoRA and embedding with the name a prompt uses, its family (from headers) and, with
    ``hashes``, A1111's short hash (``Lora hashes`` / ``TI hashes``); unusable files say why."""

    def lora(entry: Any) -> dict[str, object]:
        row: dict[str, object] = {
            "name": entry.prompt_name or entry.name,
            "path": str(entry.path),
            "family": entry.family.value,
            "type": entry.network_type or None,
        }
        if entry.error:
            row["error"] = entry.error
        elif hashes:
            row["hash"] = catalog.lora_hash(entry)
        return row

    def embedding(entry: Any) -> dict[str, object]:
        row: dict[str, object] = {"name": entry.name, "path": str(entry.path), "family": entry.family.value}
        if entry.vectors is not None:
            row["vectors"] = entry.vectors
        if entry.error:
            row["error"] = entry.error
        elif hashes:
            row["hash"] = catalog.embedding_hash(entry)
        return row

    return {
        "loras": [lora(e) for e in catalog.loras()],
        "embeddings": [embedding(e) for e in catalog.embeddings()],
    }
