"""A1111's prompt conditioning on diffusers text encoders (issue 11).

Use :class:`PromptEncoder` (``from_pipeline``) and its ``encode_batch``; the result is
``engine.conds.BatchCond``. The prompt syntax itself is in ``core.prompt_parser``; the 75-token
chunking in ``core.prompt_chunks`` (shared with the window's token counter).
"""

from stablenew_qt.engine.conditioning.cache import ConditioningCache
from stablenew_qt.engine.conditioning.embeddings import TokenEmbeddingOverride, splice_vectors
from stablenew_qt.engine.conditioning.emphasis import apply_emphasis
from stablenew_qt.engine.conditioning.encoder import ConditioningOptions, PromptEncoder
from stablenew_qt.engine.conditioning.text_encoders import ConditioningError, EncoderRole, TextEncoder

__all__ = [
    "ConditioningCache",
    "ConditioningError",
    "ConditioningOptions",
    "EncoderRole",
    "PromptEncoder",
    "TextEncoder",
    "TokenEmbeddingOverride",
    "apply_emphasis",
    "splice_vectors",
]
