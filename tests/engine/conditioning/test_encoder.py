"""The conditioning encoder on tiny CLIP encoders with the real tokenizer.

Tolerances: where we compare with diffusers' own ``encode_prompt`` the same modules run on the
same ids, so results must agree to float32 rounding (``atol`` 1e-6); weight checks are exact
products (``rtol`` 1e-6).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from stablenew_qt.core.prompt_chunks import EmbeddingMatch, Emphasis
from stablenew_qt.engine.conditioning import (
    ConditioningCache,
    ConditioningError,
    ConditioningOptions,
    PromptEncoder,
    splice_vectors,
)

PLAIN = "a photo of a cat sitting on a red chair, detailed"


def words(n: int, word: str = "cat") -> str:
    return " ".join([word] * n)


def sd1(pipe: Any, **options: Any) -> PromptEncoder:
    return PromptEncoder.from_pipeline(pipe, options=ConditioningOptions(**options))


def test_sd1_plain_prompt_equals_diffusers(sd15_pipe: Any) -> None:
    ours = sd1(sd15_pipe).encode_texts([PLAIN])[0].crossattn
    theirs, _ = sd15_pipe.encode_prompt(PLAIN, "cpu", 1, do_classifier_free_guidance=False)
    assert ours.shape == (77, 32)
    torch.testing.assert_close(ours, theirs[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("clip_skip", [1, 2, 3, 4])
def test_sd1_clip_skip_is_that_hidden_state_through_the_final_layer_norm(
    sd15_pipe: Any, clip_skip: int
) -> None:
    # A1111: clip skip n = hidden_states[-n] through the final layer norm (1 = the last hidden
    # state). diffusers' own clip_skip cannot serve as the reference here: with transformers 5 it
    # raises AttributeError ('CLIPTextModel' has no 'text_model'), the crash issue 11 reports.
    ours = sd1(sd15_pipe, clip_skip=clip_skip).encode_texts([PLAIN])[0].crossattn
    ids = sd15_pipe.tokenizer(PLAIN, padding="max_length", max_length=77, return_tensors="pt").input_ids
    model = sd15_pipe.text_encoder
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[-clip_skip]
        expected = getattr(model, "text_model", model).final_layer_norm(hidden)[0]
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)
    if clip_skip == 1:
        theirs, _ = sd15_pipe.encode_prompt(PLAIN, "cpu", 1, do_classifier_free_guidance=False)
        torch.testing.assert_close(ours, theirs[0], atol=1e-6, rtol=0)


def test_clip_skip_beyond_the_layers_is_a_clear_error(sd15_pipe: Any) -> None:
    with pytest.raises(ConditioningError, match="Clip skip 7"):
        sd1(sd15_pipe, clip_skip=7).encode_texts(["a cat"])


def test_sdxl_plain_prompt_equals_diffusers(sdxl_pipe: Any) -> None:
    encoded = PromptEncoder.from_pipeline(sdxl_pipe).encode_texts([PLAIN])[0]
    embeds, _, pooled, _ = sdxl_pipe.encode_prompt(PLAIN, device="cpu", do_classifier_free_guidance=False)
    assert encoded.crossattn.shape == (77, 64) and encoded.pooled is not None
    torch.testing.assert_close(encoded.crossattn, embeds[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(encoded.pooled, pooled[0], atol=1e-6, rtol=0)


def test_sdxl_ignores_clip_skip_by_default(sdxl_pipe: Any) -> None:
    plain = PromptEncoder.from_pipeline(sdxl_pipe).encode_texts([PLAIN])[0].crossattn
    skip = PromptEncoder.from_pipeline(sdxl_pipe, options=ConditioningOptions(clip_skip=3))
    torch.testing.assert_close(skip.encode_texts([PLAIN])[0].crossattn, plain, atol=0, rtol=0)
    clip_l_skip = PromptEncoder.from_pipeline(
        sdxl_pipe, options=ConditioningOptions(clip_skip=3, sdxl_clip_l_skip=True)
    ).encode_texts([PLAIN])[0]
    assert not torch.equal(clip_l_skip.crossattn[:, :32], plain[:, :32])  # CLIP-L changes
    torch.testing.assert_close(clip_l_skip.crossattn[:, 32:], plain[:, 32:], atol=0, rtol=0)  # bigG does not


def test_refiner_uses_its_one_encoder(refiner_pipe: Any, sdxl_pipe: Any) -> None:
    refiner = PromptEncoder.from_pipeline(refiner_pipe).encode_texts([PLAIN])[0]
    base = PromptEncoder.from_pipeline(sdxl_pipe).encode_texts([PLAIN])[0]
    assert refiner.crossattn.shape == (77, 32)
    torch.testing.assert_close(refiner.crossattn, base.crossattn[:, 32:], atol=0, rtol=0)
    torch.testing.assert_close(refiner.pooled, base.pooled, atol=0, rtol=0)


def test_weights_scale_their_tokens_and_original_restores_the_mean(sd15_pipe: Any) -> None:
    plain = sd1(sd15_pipe).encode_texts(["a cat sat"])[0].crossattn
    no_norm = sd1(sd15_pipe, emphasis=Emphasis.NO_NORM).encode_texts(["a (cat:1.5) sat"])[0].crossattn
    original = sd1(sd15_pipe).encode_texts(["a (cat:1.5) sat"])[0].crossattn
    # Positions: 0 start, 1 "a", 2 "cat", 3 "sat", 4.. end/padding.
    torch.testing.assert_close(no_norm[2], plain[2] * 1.5, rtol=1e-6, atol=0)
    torch.testing.assert_close(no_norm[[0, 1, 3, 4, 76]], plain[[0, 1, 3, 4, 76]], atol=0, rtol=0)
    assert abs(plain.mean()) > 1e-3  # the fixtures' LayerNorms make the mean non-zero
    torch.testing.assert_close(original.mean(), plain.mean(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(original, no_norm * (plain.mean() / no_norm.mean()), rtol=1e-6, atol=1e-7)


def test_emphasis_none_reads_brackets_as_text_and_ignore_drops_the_weights(sd15_pipe: Any) -> None:
    ignore = sd1(sd15_pipe, emphasis=Emphasis.IGNORE).encode_texts(["a (cat:1.5) sat"])[0].crossattn
    plain = sd1(sd15_pipe).encode_texts(["a cat sat"])[0].crossattn
    torch.testing.assert_close(ignore, plain, atol=0, rtol=0)
    literal = sd1(sd15_pipe, emphasis=Emphasis.NONE).encode_texts(["a (cat:1.5) sat"])[0].crossattn
    written = sd1(sd15_pipe, emphasis=Emphasis.NONE).encode_texts(["a ( cat : 1 . 5 ) sat"])[0].crossattn
    torch.testing.assert_close(literal, written, atol=0, rtol=0)


@pytest.mark.parametrize(("tokens", "chunks"), [(75, 1), (76, 2), (150, 2), (300, 4)])
def test_long_prompts_are_concatenated_75_token_chunks(sd15_pipe: Any, tokens: int, chunks: int) -> None:
    crossattn = sd1(sd15_pipe).encode_texts([words(tokens)])[0].crossattn
    assert crossattn.shape == (77 * chunks, 32)
    # Every chunk is framed by its own start token: the start-token state repeats.
    for i in range(1, chunks):
        torch.testing.assert_close(crossattn[77 * i], crossattn[0], atol=1e-6, rtol=0)


def test_break_starts_a_new_chunk(sd15_pipe: Any) -> None:
    broken = sd1(sd15_pipe).encode_texts(["red cat BREAK blue dog"])[0].crossattn
    assert broken.shape == (154, 32)
    second = sd1(sd15_pipe).encode_texts(["blue dog"])[0].crossattn
    first = sd1(sd15_pipe).encode_texts(["red cat"])[0].crossattn
    # Each chunk is encoded on its own; Original emphasis with all weights 1 changes nothing.
    torch.testing.assert_close(broken[:77], first, atol=1e-6, rtol=0)
    torch.testing.assert_close(broken[77:], second, atol=1e-6, rtol=0)


def test_comma_back_track_moves_the_phrase_to_the_next_chunk(sd15_pipe: Any) -> None:
    text = words(70) + ", " + " ".join(["dog"] * 10)
    crossattn = sd1(sd15_pipe).encode_texts([text])[0].crossattn
    alone = sd1(sd15_pipe).encode_texts([" ".join(["dog"] * 10)])[0].crossattn
    torch.testing.assert_close(crossattn[77:], alone, atol=1e-6, rtol=0)


def test_sdxl_pooled_comes_from_the_first_chunk(sdxl_pipe: Any) -> None:
    long = PromptEncoder.from_pipeline(sdxl_pipe).encode_texts([words(75) + " dog dog"])[0]
    first = PromptEncoder.from_pipeline(sdxl_pipe).encode_texts([words(75)])[0]
    assert long.crossattn.shape == (154, 64)
    torch.testing.assert_close(long.pooled, first.pooled, atol=1e-6, rtol=0)


def test_empty_negative_is_zeros_on_sdxl_only(sdxl_pipe: Any, sd15_pipe: Any) -> None:
    xl = PromptEncoder.from_pipeline(sdxl_pipe)
    empty = xl.encode_negative("<lora:x:1>", 20).at(0)  # empty once the tag is cut
    assert not empty.crossattn.any() and empty.pooled is not None and not empty.pooled.any()
    assert xl.encode_prompt("", 20).parts[0][0].at(0).crossattn.any()  # a positive "" is encoded
    assert xl.encode_negative(" ", 20).at(0).crossattn.any()  # only exactly empty is zeroed
    assert sd1(sd15_pipe).encode_negative("", 20).at(0).crossattn.any()


def test_cond_and_uncond_keep_their_own_lengths(sd15_pipe: Any) -> None:
    # A1111's default (pad_cond_uncond off): no padding; the CFG denoiser runs two UNet calls.
    batch = sd1(sd15_pipe).encode_batch([words(100)], ["ugly"], steps=20)
    assert batch.cond[0].parts[0][0].at(0).crossattn.shape[0] == 154
    assert batch.uncond[0].at(0).crossattn.shape[0] == 77


def test_schedule_and_and_parts(sd15_pipe: Any) -> None:
    encoder = sd1(sd15_pipe)
    prompt = encoder.encode_prompt("a [cat:dog:0.5] AND a bird:0.7", steps=10)
    (schedule, weight), (bird, bird_weight) = prompt.parts
    assert (weight, bird_weight) == (1.0, 0.7)
    assert [end for end, _ in schedule.entries] == [5, 10]
    dog = encoder.encode_texts(["a cat", "a dog"])[1].crossattn
    torch.testing.assert_close(schedule.at(6).crossattn, dog, atol=0, rtol=0)
    assert len(bird.entries) == 1


def test_edited_texts_share_one_emphasis_mean(sd15_pipe: Any) -> None:
    # A1111 encodes a prompt's schedule texts as one batch, so "Original" restores their joint mean.
    encoder = sd1(sd15_pipe)
    together = encoder.encode_texts(["a (cat:1.4)", "a dog"])[0].crossattn
    alone = encoder.encode_texts(["a (cat:1.4)"])[0].crossattn
    assert not torch.allclose(together, alone, atol=1e-7, rtol=0)


def test_second_encode_runs_no_text_encoder(sdxl_pipe: Any) -> None:
    calls = []
    handles = [
        model.register_forward_hook(lambda *_: calls.append(1))
        for model in (sdxl_pipe.text_encoder, sdxl_pipe.text_encoder_2)
    ]
    try:
        cache = ConditioningCache()
        prompts, negatives = ["(cat:1.2) [dog:bird:0.5]", "x"], ["ugly", ""]
        PromptEncoder.from_pipeline(sdxl_pipe, cache=cache, cache_key="xl").encode_batch(
            prompts, negatives, 20
        )
        first = len(calls)
        again = PromptEncoder.from_pipeline(sdxl_pipe, cache=cache, cache_key="xl")
        again.encode_batch(prompts, negatives, 30)  # [dog:bird:0.5] gives the same two texts at 30 steps
        assert first > 0 and len(calls) == first
        PromptEncoder.from_pipeline(sdxl_pipe, cache=cache, cache_key="xl-with-lora").encode_batch(
            prompts, negatives, 20
        )
        assert len(calls) == 2 * first  # another encoder set encodes again
    finally:
        for handle in handles:
            handle.remove()


class _OneWordEmbedding:
    """A fake textual inversion: the token "cat" is a 2-vector embedding."""

    def __init__(self, cat_id: int) -> None:
        self.cat_id = cat_id

    def match_at(self, tokens: Any, position: int) -> EmbeddingMatch | None:
        return EmbeddingMatch("cat-style", 2, 1) if tokens[position] == self.cat_id else None


def test_textual_inversion_seam_splices_vectors_after_the_start_token(sd15_pipe: Any) -> None:
    cat_id = sd15_pipe.tokenizer.get_vocab()["cat</w>"]
    vectors = torch.full((2, 32), 0.25)
    seen: list[Any] = []

    def override(role: str, embeds: torch.Tensor, fixes: Any) -> torch.Tensor:
        seen.append((role, [[(f.offset, f.name) for f in row] for row in fixes]))
        return splice_vectors(embeds, fixes, lambda _name: vectors)

    encoder = PromptEncoder.from_pipeline(
        sd15_pipe, embeddings=_OneWordEmbedding(cat_id), embedding_override=override
    )
    encoded = encoder.encode_texts(["a cat"])[0].crossattn
    assert seen == [("sd1-clip-l", [[(1, "cat-style")]])]
    # The same result as feeding the spliced embeddings by hand: start, "a", 2 vectors, end...
    ids = [49406, sd15_pipe.tokenizer.get_vocab()["a</w>"], 0, 0] + [49407] * 73
    embeds = sd15_pipe.text_encoder.get_input_embeddings()(torch.tensor([ids]))
    embeds[0, 2:4] = vectors
    hook = sd15_pipe.text_encoder.get_input_embeddings().register_forward_hook(lambda *_: embeds)
    try:
        expected = sd15_pipe.text_encoder(input_ids=torch.tensor([ids])).last_hidden_state[0]
    finally:
        hook.remove()
    torch.testing.assert_close(encoded, expected, atol=1e-6, rtol=0)
