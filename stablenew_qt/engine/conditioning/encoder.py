"""A1111's conditioning for a batch of prompts: schedules, AND parts, chunks, emphasis, SDXL.

How A1111 1.10 builds it (``prompt_parser.get_learned_conditioning``, ``sd_hijack_clip.forward``,
``sd_models_xl.get_learned_conditioning``), and so :class:`PromptEncoder`:

1. tags out; the positive prompt split at ``AND`` (the negative is not), each part scheduled;
2. the texts of one schedule are encoded together, as one batch: each text is chunked, a text with
   fewer chunks gets A1111's empty chunk (start + 76 end tokens) for the missing ones, and every
   chunk batch goes through the text encoder; Original emphasis restores the mean of that whole
   batch (every text of the schedule, all 77 positions, all features), so an edited prompt's texts
   are weighted jointly, exactly as in A1111;
3. chunk outputs are concatenated along the tokens (2 chunks = 154); SDXL runs both encoders this
   way, each with its own weights and mean, and concatenates them on the features; the pooled
   vector is bigG's, from the first chunk, unweighted;
4. SDXL (base and refiner): a negative prompt whose schedule texts are all empty after the tags
   are cut is all zeros (cross-attention and pooled). SD 1.x encodes it.

Encoded schedule batches are cached (``ConditioningCache``); a second encode of the same prompts
runs no text encoder.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import astuple, dataclass, replace
from typing import TYPE_CHECKING, Any

from stablenew_qt.core.prompt_chunks import (
    DEFAULT_COMMA_BACKTRACK,
    EmbeddingMatcher,
    Emphasis,
    PromptChunk,
    chunk_prompt,
)
from stablenew_qt.core.prompt_parser import parse_prompt, prompt_schedule
from stablenew_qt.engine.conditioning.cache import ConditioningCache
from stablenew_qt.engine.conditioning.embeddings import TokenEmbeddingOverride
from stablenew_qt.engine.conditioning.emphasis import apply_emphasis
from stablenew_qt.engine.conditioning.text_encoders import (
    ConditioningError,
    EncoderOptions,
    EncoderRole,
    TextEncoder,
)
from stablenew_qt.engine.conds import BatchCond, PromptCond, ScheduledCond, TextCond

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ConditioningOptions:
    """A1111's settings that change the conditioning (defaults are A1111's)."""

    clip_skip: int = 1
    emphasis: Emphasis = Emphasis.ORIGINAL
    comma_padding_backtrack: int = DEFAULT_COMMA_BACKTRACK
    sdxl_clip_l_skip: bool = False
    use_old_scheduling: bool = False

    def __post_init__(self) -> None:
        if self.clip_skip < 1:
            raise ConditioningError(f"Clip skip must be 1 or more, got {self.clip_skip}")
        if not 0 <= self.comma_padding_backtrack <= 74:
            raise ConditioningError(
                f"comma_padding_backtrack must be 0 to 74, got {self.comma_padding_backtrack}"
            )


class PromptEncoder:
    """Encodes prompts for one resident set of text encoders (SD 1.x, SDXL base or SDXL refiner)."""

    def __init__(
        self,
        encoders: Sequence[TextEncoder],
        *,
        zero_empty_negative: bool,
        options: ConditioningOptions | None = None,
        cache: ConditioningCache | None = None,
        cache_key: Hashable | None = None,
        embeddings: EmbeddingMatcher | None = None,
        embedding_override: TokenEmbeddingOverride | None = None,
    ) -> None:
        self.encoders = tuple(encoders)
        self.zero_empty_negative = zero_empty_negative
        self.options = options or ConditioningOptions()
        self.cache = cache if cache is not None else ConditioningCache()
        self.cache_key = cache_key if cache_key is not None else object()
        self.embeddings = embeddings
        self.embedding_override = embedding_override

    @classmethod
    def from_pipeline(cls, pipe: Any, **kwargs: Any) -> PromptEncoder:
        """The encoder for a diffusers SD 1.x, SDXL or SDXL-refiner pipeline's text encoders."""
        first = getattr(pipe, "text_encoder", None)
        second = getattr(pipe, "text_encoder_2", None)
        if second is None:
            if first is None:
                raise ConditioningError("this pipeline has no text encoder to encode prompts with")
            return cls(
                [TextEncoder(EncoderRole.SD1_CLIP_L, first, pipe.tokenizer)],
                zero_empty_negative=False,
                **kwargs,
            )
        g = TextEncoder(EncoderRole.SDXL_CLIP_G, second, pipe.tokenizer_2)
        if first is None:
            return cls([g], zero_empty_negative=True, **kwargs)
        return cls(
            [TextEncoder(EncoderRole.SDXL_CLIP_L, first, pipe.tokenizer), g],
            zero_empty_negative=True,
            **kwargs,
        )

    # -- the public steps ---------------------------------------------------------------------------

    def encode_batch(
        self, prompts: Sequence[str], negatives: Sequence[str], steps: int, hires_steps: int | None = None
    ) -> BatchCond:
        """A1111's ``c`` and ``uc`` for a batch: one PromptCond and one negative schedule per image.

        ``steps`` and ``hires_steps`` as :func:`core.prompt_schedule.prompt_schedule` takes them.
        """
        if len(prompts) != len(negatives):
            raise ConditioningError(f"{len(prompts)} prompts but {len(negatives)} negative prompts")
        cond = tuple(self.encode_prompt(p, steps, hires_steps) for p in prompts)
        uncond = tuple(self.encode_negative(n, steps, hires_steps) for n in negatives)
        return BatchCond(cond=cond, uncond=uncond)

    def encode_prompt(self, prompt: str, steps: int, hires_steps: int | None = None) -> PromptCond:
        """A positive prompt: its AND parts, each scheduled, with their weights."""
        parsed = parse_prompt(prompt)
        return PromptCond(
            parts=tuple((self.encode_schedule(p.text, steps, hires_steps), p.weight) for p in parsed.parts)
        )

    def encode_negative(self, prompt: str, steps: int, hires_steps: int | None = None) -> ScheduledCond:
        """A negative prompt: tags cut, no AND split, scheduled."""
        text = parse_prompt(prompt, negative=True).parts[0].text
        return self.encode_schedule(text, steps, hires_steps, negative=True)

    def encode_schedule(
        self, text: str, steps: int, hires_steps: int | None = None, *, negative: bool = False
    ) -> ScheduledCond:
        """One tag-free text over the steps: its schedule's texts encoded together."""
        schedule = prompt_schedule(
            text, steps, hires_steps, use_old_scheduling=self.options.use_old_scheduling
        )
        conds = self.encode_texts([t for _, t in schedule], negative=negative)
        return ScheduledCond(entries=tuple((end, c) for (end, _), c in zip(schedule, conds, strict=True)))

    def encode_texts(self, texts: Sequence[str], *, negative: bool = False) -> tuple[TextCond, ...]:
        """Texts encoded as one batch, as A1111 encodes one prompt's schedule (cached)."""
        key = (self.cache_key, astuple(self.options), negative and self.zero_empty_negative, tuple(texts))
        cached = self.cache.get(key)
        if cached is None:
            cached = self._encode_uncached(list(texts), negative)
            self.cache.put(key, cached)
        return cached

    # -- the work -----------------------------------------------------------------------------------

    def _encode_uncached(self, texts: list[str], negative: bool) -> tuple[TextCond, ...]:
        import torch

        outputs = [self._run(encoder, texts) for encoder in self.encoders]
        lengths = {z.shape[1] for z, _ in outputs}
        if len(lengths) > 1:
            raise ConditioningError(
                "SDXL's two tokenizers split this prompt into different numbers of 75-token chunks "
                "(HTML entities such as &amp; count differently); write the characters themselves"
            )
        crossattn = torch.cat([z for z, _ in outputs], dim=-1)
        pooled = next((p for _, p in outputs if p is not None), None)
        if negative and self.zero_empty_negative and all(t == "" for t in texts):
            crossattn = torch.zeros_like(crossattn)
            pooled = torch.zeros_like(pooled) if pooled is not None else None
        return tuple(
            TextCond(crossattn=crossattn[i], pooled=pooled[i] if pooled is not None else None)
            for i in range(len(texts))
        )

    def _run(self, encoder: TextEncoder, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One encoder over a batch of texts: ``[B, 77 x chunks, C]`` and the first chunk's pooled."""
        import torch

        unique = list(dict.fromkeys(texts))
        chunked = {t: self._chunks(encoder, t) for t in unique}
        chunk_count = max(len(c) for c in chunked.values())
        rows = [unique.index(t) for t in texts]
        zs, first_pooled = [], None
        for i in range(chunk_count):
            batch = [chunked[t][i] if i < len(chunked[t]) else encoder.spec.empty_chunk() for t in unique]
            options = EncoderOptions(self.options.clip_skip, self.options.sdxl_clip_l_skip)
            z, pooled = encoder.encode(
                [c.tokens for c in batch], options, [c.fixes for c in batch], self.embedding_override
            )
            # Run each distinct text once, then lay the batch out as A1111 has it (duplicates
            # included: alternation repeats texts, and the emphasis mean counts every row).
            row_of = torch.tensor(rows, device=z.device)
            z = z.index_select(0, row_of)
            weights = torch.tensor([c.multipliers for c in batch], device=z.device).index_select(0, row_of)
            zs.append(apply_emphasis(z, weights, self.options.emphasis))
            if i == 0 and pooled is not None:
                first_pooled = pooled.index_select(0, row_of)
        return torch.cat(zs, dim=1), first_pooled

    def _chunks(self, encoder: TextEncoder, text: str) -> list[PromptChunk]:
        spec = replace(encoder.spec, comma_padding_backtrack=self.options.comma_padding_backtrack)
        chunks, _ = chunk_prompt(text, encoder.tokenize, spec, self.options.emphasis, self.embeddings)
        return chunks
