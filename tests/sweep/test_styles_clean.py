"""Finding a style's text in a prompt as A1111 finds it (issue 15, "re-apply nothing twice").

A1111 1.7-1.10 (``modules/styles.py``, ``extract_style_text_from_prompt``) match on the stripped
texts; its clean-step version (``clean_text``) matches on cleaned texts: runs of commas followed by
white space become ``", "``, runs of white space one space, commas and spaces stripped at the ends.
We try the first, then the second. Each case below has the result worked out by hand, and a small
reference written here from those rules (a character scanner, not a regex; it calls nothing of
``styles.py``) must agree with both.
"""

from __future__ import annotations

import pytest

from stablenew_qt.core.sweep import PromptStyle, StyleLibrary, extract_styles, styles_in_prompt
from stablenew_qt.core.sweep.styles import clean_prompt_text, extract_style_text

PLACEHOLDER = "{prompt}"


def reference_clean(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        j = i
        while True:  # groups of one or more commas, each followed by one or more white spaces
            k = j
            while k < len(text) and text[k] == ",":
                k += 1
            if k == j or k == len(text) or not text[k].isspace():
                break
            while k < len(text) and text[k].isspace():
                k += 1
            j = k
        if j > i:
            if j < len(text) and text[j] == ",":
                j += 1
            out.append(", ")
            i = j
        else:
            out.append(text[i])
            i += 1
    text, pieces, i = "".join(out), [], 0
    while i < len(text):  # a run of two or more white spaces becomes one space
        k = i
        while k < len(text) and text[k].isspace():
            k += 1
        if k - i >= 2:
            pieces.append(" ")
            i = k
        else:
            pieces.append(text[i])
            i += 1
    result = "".join(pieces)
    while result and result[0] in ", ":
        result = result[1:]
    while result and result[-1] in ", ":
        result = result[:-1]
    return result


def reference_match(style: str, prompt: str) -> str | None:
    at = style.find(PLACEHOLDER)
    if at >= 0:
        if style.find(PLACEHOLDER, at + 1) >= 0:
            return None
        left, right = style[:at], style[at + len(PLACEHOLDER) :]
        if prompt[: len(left)] == left and (not right or prompt[-len(right) :] == right):
            return prompt[len(left) : len(prompt) - len(right)]
        return None
    if style and prompt[-len(style) :] != style:
        return None
    rest = prompt[: len(prompt) - len(style)]
    return rest[: len(rest) - 2] if rest[-2:] == ", " else rest


def reference_extract(style: str, prompt: str) -> tuple[bool, str]:
    found = reference_match(style.strip(), prompt.strip())
    if found is None and reference_clean(style):
        found = reference_match(reference_clean(style), reference_clean(prompt))
    return (False, prompt) if found is None else (True, found)


CASES = [
    # A1111's docstring examples
    ("masterpiece", "1girl, art by greg, masterpiece", (True, "1girl, art by greg")),
    ("masterpiece, {prompt}", "masterpiece, 1girl, art by greg", (True, "1girl, art by greg")),
    ("masterpiece, {prompt}", "exquisite, 1girl", (False, "exquisite, 1girl")),
    # the stripped match comes first: its remainder re-applies to the very same prompt
    ("grain", "a fox,, grain", (True, "a fox,")),
    ("{prompt}, cinematic", "a fox , , cinematic", (True, "a fox , ")),
    ("grain", "a fox , , grain", (True, "a fox , ")),
    ("grain", "a  fox,  grain", (True, "a  fox,  ")),
    ("high contrast", "a fox,\nhigh contrast", (True, "a fox,\n")),
    # only the cleaned texts match: the cleaned remainder
    ("film grain", "a  fox, film  grain", (True, "a fox")),
    ("film  grain ", "a fox, film grain", (True, "a fox")),
    ("grain", "a fox, grain,", (True, "a fox")),
    ("grain, ", "a fox, grain", (True, "a fox")),
    ("cinematic still of {prompt},  moody", "cinematic still of a fox, moody", (True, "a fox")),
    ("black and white,\nhigh contrast", "a fox, black and white, high contrast", (True, "a fox")),
    ("grain", "a fox, , ,grain, ", (True, "a fox")),
    # a style applied twice comes out once per call
    ("grain", "a fox, grain, grain", (True, "a fox, grain")),
    ("{prompt}, grain", "a fox, grain, grain", (True, "a fox, grain")),
    # empty styles match any prompt (stripped); a style of only commas and spaces never
    ("", "a fox  ", (True, "a fox")),
    ("", "", (True, "")),
    (" , ", "a fox", (False, "a fox")),
    ("{prompt}", "  a  fox ", (True, "a  fox")),
    # no match
    ("{prompt}, {prompt}", "a, a", (False, "a, a")),
    ("grain", "grain, a fox", (False, "grain, a fox")),
    ("b, c", "a,b,c", (False, "a,b,c")),  # no space after the commas: nothing to clean
]


@pytest.mark.parametrize(("style", "prompt", "expected"), CASES)
def test_extract_style_text_matches_the_reference(
    style: str, prompt: str, expected: tuple[bool, str]
) -> None:
    assert reference_extract(style, prompt) == expected, "the reference and the hand result differ"
    assert extract_style_text(style, prompt) == expected


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("a, , b", "a, b"),
        ("a,, b", "a, b"),
        ("a, ,b", "a, b"),  # the run takes one comma after it
        ("a,b", "a,b"),
        ("a,\nb", "a, b"),
        ("a  b\n\nc", "a b c"),
        ("a\nb", "a\nb"),  # a single line break is no run
        (" ,a, ", "a"),
        (", , ,", ""),
        ("a fox,", "a fox"),
    ],
)
def test_clean_prompt_text(text: str, cleaned: str) -> None:
    assert reference_clean(text) == cleaned
    assert clean_prompt_text(text) == cleaned


STYLES = (
    PromptStyle("Grain", "grain", "blurry"),
    PromptStyle("Cinema", "cinematic {prompt}", "{prompt}, cartoon"),
    PromptStyle("NoText", "", "text"),
    PromptStyle("Blank"),
)


@pytest.mark.parametrize(
    ("prompt", "negative", "expected"),
    [
        ("cinematic a fox, grain", "low, blurry, cartoon", (("Grain", "Cinema"), "a fox", "low")),
        # the user tidied the commas and spaces after restoring: still found, cleaned remainder
        ("cinematic  a fox,  grain", "low,, blurry, , cartoon", (("Grain", "Cinema"), "a fox,  ", "low")),
        ("a fox, grain", "low, text", (("NoText",), "a fox, grain", "low")),  # Grain's negative missing
        ("a fox, grain", "low, blurry, text", (("Grain", "NoText"), "a fox", "low")),
        ("a fox, grain, grain", "blurry, blurry", (("Grain",), "a fox, grain", "blurry")),
    ],
)
def test_extract_styles_over_both_prompts(
    prompt: str, negative: str, expected: tuple[tuple[str, ...], str, str]
) -> None:
    assert extract_styles(STYLES, prompt, negative) == expected


def test_styles_in_prompt_names_the_styles_applied_in_their_order() -> None:
    library = StyleLibrary(STYLES)
    styled = library.apply("a fox", "low", ["Cinema", "NoText", "Grain"])
    assert styled == ("cinematic a fox, grain", "low, cartoon, text, blurry")
    assert styles_in_prompt(library, *styled) == ("Cinema", "NoText", "Grain")
    assert styles_in_prompt(library, "cinematic  a fox ,  grain", "low, cartoon,, text,  blurry,") == (
        "Cinema",
        "NoText",
        "Grain",
    )
    assert styles_in_prompt(library, "a fox, grain", "low") == ()  # Grain's negative is missing
    assert styles_in_prompt(StyleLibrary(), *styled) == ()


# Not an empty base: "cinematic {prompt}" over "" is "cinematic ", which A1111 cannot match either
# (the stripped prompt no longer starts with "cinematic ").
@pytest.mark.parametrize("base", ["a fox", "a  fox,,", " a fox , ,", "a fox,\nin snow"])
@pytest.mark.parametrize(
    "names", [("Grain",), ("Cinema",), ("Grain", "Cinema"), ("Cinema", "NoText", "Grain")]
)
def test_a_styled_prompt_restores_and_regenerates_byte_for_byte(base: str, names: tuple[str, ...]) -> None:
    # The stripped match comes first for this: cleaning alone would turn "a  fox,," into "a fox".
    library = StyleLibrary(STYLES)
    styled = library.apply(base, "low  ,", names)
    found, prompt, negative = library.extract(*styled)
    assert found == names
    assert library.apply(prompt, negative, found) == styled
