"""Attention weights and BREAK markers, against A1111 1.10's ``parse_prompt_attention``.

Expected values were measured by running A1111's function on the same inputs; floats compare
exactly (the factors multiply in A1111's order). Where A1111's behaviour is surprising:

- ``(cat:abc)``: ``:abc)`` is no weight, so ``:abc`` is text and ``)`` closes the bracket (x1.1);
- ``(cat:1.2:3)``: only the last ``:<number>)`` closes, so ``cat:1.2`` gets 3;
- a closer with nothing open is text (``a) b] c``), a lone backslash is dropped (``a\\b``);
- crossed brackets close the most recent of their own kind: ``[a (b] c)``;
- ``BREAK`` only upper case and a whole word; inside brackets its -1 is multiplied too, and the
  encoder then tokenizes it as the word (A1111 checks for exactly -1).
"""

from __future__ import annotations

import pytest

from stablenew_qt.core.prompt_attention import PromptSyntaxError, is_break, parse_attention

CASES: list[tuple[str, list[tuple[str, float]]]] = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced)", [("unbalanced", 1.1)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            ("a ", 1.0),
            ("house", 1.5730000000000004),
            (" ", 1.1),
            ("on", 1.0),
            (" a ", 1.1),
            ("hill", 0.55),
            (", sun, ", 1.1),
            ("sky", 1.4641000000000006),
            (".", 1.1),
        ],
    ),
    ("((cat))", [("cat", 1.2100000000000002)]),
    ("[cat]", [("cat", 0.9090909090909091)]),
    ("[[cat]]", [("cat", 0.8264462809917354)]),
    ("(cat:1.3)", [("cat", 1.3)]),
    ("(cat: 1.3 )", [("cat", 1.3)]),
    ("(cat:0)", [("cat", 0.0)]),
    ("(cat:-1)", [("cat", -1.0)]),
    ("(cat:abc)", [("cat:abc", 1.1)]),
    ("(cat:1.2:3)", [("cat:1.2", 3.0)]),
    ("()", [("", 1.0)]),
    ("[]", [("", 1.0)]),
    ("( )", [(" ", 1.1)]),
    ("a) b] c", [("a) b] c", 1.0)]),
    (":1.2) x", [(":1.2) x", 1.0)]),
    ("a : b", [("a : b", 1.0)]),
    ("\\\\ backslash", [("\\ backslash", 1.0)]),
    ("a\\b", [("ab", 1.0)]),
    ("a\\:b", [("a:b", 1.0)]),
    ("a \\", [("a ", 1.0)]),
    ("[a (b] c)", [("a ", 0.9090909090909091), ("b", 1.0), (" c", 1.1)]),
    ("(a [b) c]", [("a ", 1.1), ("b", 1.0), (" c", 0.9090909090909091)]),
    ("a BREAK b", [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]),
    ("aBREAK b", [("aBREAK b", 1.0)]),
    ("a break b", [("a break b", 1.0)]),
    ("BREAK", [("", 1.0), ("BREAK", -1.0), ("", 1.0)]),
    ("a BREAK", [("a", 1.0), ("BREAK", -1.0), ("", 1.0)]),
    ("BREAK BREAK", [("", 1.0), ("BREAK", -1.0), ("", 1.0), ("BREAK", -1.0), ("", 1.0)]),
    ("(a BREAK b)", [("a", 1.1), ("BREAK", -1.1), ("b", 1.1)]),
    ("[a BREAK b]", [("a", 0.9090909090909091), ("BREAK", -0.9090909090909091), ("b", 0.9090909090909091)]),
    ("a,BREAK,b", [("a,", 1.0), ("BREAK", -1.0), (",b", 1.0)]),
    ("x\nBREAK\ny", [("x", 1.0), ("BREAK", -1.0), ("y", 1.0)]),
    ("(a:1.1)(b)", [("ab", 1.1)]),
    ("([a])", [("a", 1.0)]),
    ("[(a)]", [("a", 1.0)]),
    ("(a:1.5) (b:1.5)", [("a", 1.5), (" ", 1.0), ("b", 1.5)]),
    ("", [("", 1.0)]),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_attention_matches_a1111(text: str, expected: list[tuple[str, float]]) -> None:
    assert parse_attention(text) == expected


def test_break_marker_is_only_the_unweighted_one() -> None:
    pieces = parse_attention("a BREAK b (c BREAK d)")
    assert [is_break(p) for p in pieces] == [False, True, False, False, False, False]


@pytest.mark.parametrize("text", ["(cat:1.2.3)", "(cat:.)", "(cat:..5)"])
def test_weight_that_is_no_number_is_a_clear_error(text: str) -> None:
    # A1111 raises ValueError from float() here and the generation fails.
    with pytest.raises(PromptSyntaxError, match="not a number"):
        parse_attention(text)
