"""One text encoder as A1111 runs it: tokenizer, chunk framing, padding id and output layer.

Facts from A1111 1.10 (``sd_hijack_clip.py``, ``sd_hijack_open_clip.py``, ``sd_models_xl.py``):

- SD 1.x CLIP-L: pads with the end token; clip skip 1 is the last hidden state (after the final
  layer norm); clip skip n > 1 is ``hidden_states[-n]`` passed through the final layer norm.
- SDXL CLIP-L: the penultimate hidden state, no final layer norm (its config's ``layer_idx`` 11 of
  12 layers), clip skip ignored unless the option ``sdxl_clip_l_skip`` is on (then
  ``hidden_states[-n]``, still without the layer norm). Pads with the end token.
- SDXL OpenCLIP bigG (base and refiner): the penultimate hidden state without layer norm; every
  position after the first end token is set to id 0; the pooled vector is the projected, layer-normed
  end-token state (what transformers' ``text_embeds`` is). A1111 tokenizes it with open_clip's
  tokenizer, which also unescapes HTML entities twice (``&amp;`` -> ``&``); we do that too (its
  ``ftfy`` repair of broken text is not reproduced).

transformers 5 has the final layer norm on ``CLIPTextModel`` itself, 4.x under ``.text_model``;
both are found.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from stablenew_qt.core.prompt_chunks import ChunkSpec, EmbeddingFix
from stablenew_qt.engine.conditioning.embeddings import TokenEmbeddingOverride, token_embedding_hook

if TYPE_CHECKING:
    import torch


class ConditioningError(ValueError):
    """A prompt or option the encoder cannot turn into A1111's conditioning; the message says why."""


class EncoderRole(StrEnum):
    """Which of A1111's text-encoder wrappers a model plays."""

    SD1_CLIP_L = "sd1-clip-l"
    SDXL_CLIP_L = "sdxl-clip-l"
    SDXL_CLIP_G = "sdxl-clip-g"


@dataclass(frozen=True)
class EncoderOptions:
    """The options that change an encoder's output (part of the cache key)."""

    clip_skip: int = 1
    sdxl_clip_l_skip: bool = False


class TextEncoder:
    """A transformers CLIP text model with its tokenizer, run the way A1111 runs its ``role``."""

    def __init__(
        self, role: EncoderRole, model: Any, tokenizer: Any, *, comma_padding_backtrack: int = 20
    ) -> None:
        self.role = role
        self.model = model
        self.tokenizer = tokenizer
        vocab = tokenizer.get_vocab()
        self.spec = ChunkSpec(
            id_start=int(tokenizer.bos_token_id),
            id_end=int(tokenizer.eos_token_id),
            comma_id=vocab.get(",</w>"),
        )
        self.pad_id = 0 if role == EncoderRole.SDXL_CLIP_G else self.spec.id_end
        inner = getattr(model, "text_model", model)
        self.final_layer_norm = inner.final_layer_norm
        self.token_embedding = inner.embeddings.token_embedding
        self.layer_count = int(model.config.num_hidden_layers)

    @property
    def input_device(self) -> torch.device:
        """Where token ids go: the embedding's device, or the CPU when sequential CPU offload left
        the weights on the meta device (accelerate's hooks then move the ids to the GPU)."""
        import torch

        device = self.token_embedding.weight.device
        return torch.device("cpu") if device.type == "meta" else device

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, no start/end (A1111's ``tokenize``)."""
        if self.role == EncoderRole.SDXL_CLIP_G:
            texts = [html.unescape(html.unescape(text)).strip() for text in texts]
        ids = self.tokenizer(texts, truncation=False, add_special_tokens=False, verbose=False)["input_ids"]
        return [list(row) for row in ids]

    def padded(self, rows: list[list[int]]) -> list[list[int]]:
        """Rows with every id after the first end token set to the pad id (only bigG pads with 0)."""
        if self.pad_id == self.spec.id_end:
            return rows
        out = []
        for row in rows:
            first_end = row.index(self.spec.id_end)
            out.append(row[: first_end + 1] + [self.pad_id] * (len(row) - first_end - 1))
        return out

    def encode(
        self,
        rows: list[list[int]],
        options: EncoderOptions,
        fixes: list[list[EmbeddingFix]],
        override: TokenEmbeddingOverride | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Hidden states ``[B, 77, C]`` of one chunk batch, and bigG's pooled ``[B, P]`` (else None)."""
        import torch

        device = self.input_device
        tokens = torch.tensor(self.padded(rows), dtype=torch.long, device=device)
        with torch.no_grad(), token_embedding_hook(self.token_embedding, self.role, fixes, override):
            output = self.model(input_ids=tokens, output_hidden_states=True)
            hidden = output.hidden_states
            if self.role == EncoderRole.SD1_CLIP_L:
                if options.clip_skip <= 1:
                    return output.last_hidden_state, None
                return self.final_layer_norm(self._hidden(hidden, options.clip_skip)), None
            if self.role == EncoderRole.SDXL_CLIP_L:
                depth = options.clip_skip if options.sdxl_clip_l_skip else 2
                return self._hidden(hidden, depth), None
            return hidden[-2], output.text_embeds

    def _hidden(self, hidden: tuple[torch.Tensor, ...], depth: int) -> torch.Tensor:
        if depth > len(hidden):
            raise ConditioningError(
                f"Clip skip {depth} is more than this text encoder's {self.layer_count} layers allow; "
                f"use 1 to {len(hidden)}"
            )
        return hidden[-depth]
