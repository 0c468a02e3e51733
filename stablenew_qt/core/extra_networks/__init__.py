"""Extra networks (A1111's name for LoRAs, LyCORIS and textual-inversion embeddings), pure Python.

* :class:`ExtraNetworksCatalog` lists what is installed (``models/Lora``, ``models/LyCORIS``,
  ``embeddings``, ``models/embeddings``) from safetensors headers and sidecar files, resolves names
  the way A1111 does, and computes A1111's short hashes lazily.
* :func:`lora_requests` and :func:`check_loras` turn prompt tags into checked requests before
  anything loads; :func:`hypernetwork_warnings` explains dropped ``<hypernet:...>`` tags.
* :class:`EmbeddingIndex` is A1111's token-id lookup of embeddings, for the prompt chunker.
* :func:`restore_lora_names` / :func:`restore_embedding_names` read an image's ``Lora hashes`` and
  ``TI hashes`` back.

Nothing here imports torch or Qt; the engine loads the weights (``engine/lora``, ``engine/embeddings``).
"""

from .catalog import ExtraNetworkError, ExtraNetworksCatalog, LoraMatch, closest_names
from .embedding_index import EmbeddingIndex, EmbeddingMatch, IndexedEmbedding
from .entries import EmbeddingEntry, LoraEntry
from .hashes import SHORT_HASH_LENGTH, DigestCache
from .header import HeaderError, SafetensorsHeader, TensorInfo, read_header
from .lora_info import SUPPORTED_TYPES, ModuleType, NetworkFamily
from .requests import (
    ExtraNetworkTagLike,
    LoraRequest,
    check_loras,
    family_problem,
    hypernetwork_warnings,
    ignored_dyn_warnings,
    lora_requests,
)
from .restore import (
    RestoredNetwork,
    parse_network_hashes,
    restore_embedding_names,
    restore_lora_names,
    restore_networks_in_config,
)
from .sidecars import Sidecars

__all__ = [
    "SHORT_HASH_LENGTH",
    "SUPPORTED_TYPES",
    "DigestCache",
    "EmbeddingEntry",
    "EmbeddingIndex",
    "EmbeddingMatch",
    "ExtraNetworkError",
    "ExtraNetworkTagLike",
    "ExtraNetworksCatalog",
    "HeaderError",
    "IndexedEmbedding",
    "LoraEntry",
    "LoraMatch",
    "LoraRequest",
    "ModuleType",
    "NetworkFamily",
    "RestoredNetwork",
    "SafetensorsHeader",
    "Sidecars",
    "TensorInfo",
    "check_loras",
    "closest_names",
    "family_problem",
    "hypernetwork_warnings",
    "ignored_dyn_warnings",
    "lora_requests",
    "parse_network_hashes",
    "read_header",
    "restore_embedding_names",
    "restore_lora_names",
    "restore_networks_in_config",
]
