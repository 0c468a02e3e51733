"""Prompt editing and alternation schedules, against A1111 1.10.

Every expected schedule below was measured by running A1111's own grammar and schedule code
(``modules/prompt_parser.py`` at 1.10, on lark 1.1.2, the version A1111 pins) on the same input;
the first block repeats the doctests A1111 ships in that file. A1111's parser is a lark Earley
grammar; ours is hand-written, so the cases that decide between readings are the point:

- a ``[``/``(`` that forms a construct is read as one, even where the grammar would also allow
  reading its characters as literal text (``[a [b:c:1] d:2]``: the outer bracket is ``[to:when]``);
- inside a construct every bracket must close in order, else the construct is literal text and the
  parse goes on after its opening bracket (``[a (b:c:2]``, ``((a][:b:c [d:3]``);
- a ``|`` outside an alternation, or a backslash that escapes nothing (end of text or a line
  break: lark's ``.`` does not match a newline), fails the whole parse: A1111 then uses the prompt
  as written at every step (``x | y``, ``a \\``, ``[cat|dog:3]``);
- a ``when`` with a decimal point is a fraction of the steps (new timelines), so ``1.0`` means
  all steps and ``3.`` means 3 x steps, capped; ``1e1`` has no point and is step 10.
"""

from __future__ import annotations

import pytest

from stablenew_qt.core.prompt_schedule import prompt_schedule

Schedule = list[tuple[int, str]]

CASES: list[tuple[str, int, int | None, bool, Schedule]] = [
    # A1111's doctests.
    ("test", 10, None, False, [(10, "test")]),
    ("a [b:3]", 10, None, False, [(3, "a "), (10, "a b")]),
    ("a [b: 3]", 10, None, False, [(3, "a "), (10, "a b")]),
    ("a [[[b]]:2]", 10, None, False, [(2, "a "), (10, "a [[b]]")]),
    ("[(a:2):3]", 10, None, False, [(3, ""), (10, "(a:2)")]),
    ("a [b : c : 1] d", 10, None, False, [(1, "a b  d"), (10, "a  c  d")]),
    ("a[b:[c:d:2]:1]e", 10, None, False, [(1, "abe"), (2, "ace"), (10, "ade")]),
    ("a [unbalanced", 10, None, False, [(10, "a [unbalanced")]),
    ("a [b:.5] c", 10, None, False, [(5, "a  c"), (10, "a b c")]),
    ("((a][:b:c [d:3]", 10, None, False, [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    ("[a|(b:1.1)]", 4, None, False, [(1, "a"), (2, "(b:1.1)"), (3, "a"), (4, "(b:1.1)")]),
    ("[fe|]male", 4, None, False, [(1, "female"), (2, "male"), (3, "female"), (4, "male")]),
    (
        "[fe|||]male",
        6,
        None,
        False,
        [(1, "female"), (2, "male"), (3, "male"), (4, "male"), (5, "female"), (6, "male")],
    ),
    ("a [b:.5] c", 10, 10, False, [(10, "a b c")]),
    ("a [b:1.5] c", 10, 10, False, [(5, "a  c"), (10, "a b c")]),
    # Fractions at several step counts: int() truncates (12.5 -> 12, 3.5 -> 3).
    ("a [cat:dog:0.5] b", 20, None, False, [(10, "a cat b"), (20, "a dog b")]),
    ("a [cat:dog:0.5] b", 25, None, False, [(12, "a cat b"), (25, "a dog b")]),
    ("a [cat:dog:0.5] b", 7, None, False, [(3, "a cat b"), (7, "a dog b")]),
    ("[cat:dog:0.25] [red:blue:0.75]", 8, None, False, [(2, "cat red"), (6, "dog red"), (8, "dog blue")]),
    # Step numbers, caps and the edges of "when".
    ("[cat:dog:5]", 20, None, False, [(5, "cat"), (20, "dog")]),
    ("[cat:dog:5]", 3, None, False, [(3, "cat")]),
    ("[cat:dog:1.0]", 10, None, False, [(10, "cat")]),
    ("[cat:dog:1]", 10, None, False, [(1, "cat"), (10, "dog")]),
    ("[cat:dog:0]", 10, None, False, [(10, "dog")]),
    ("[cat:dog:-1]", 10, None, False, [(10, "dog")]),
    ("[cat:dog:1e1]", 20, None, False, [(10, "cat"), (20, "dog")]),
    ("[cat:dog:3.]", 10, None, False, [(10, "cat")]),
    ("[cat:dog:5 ]", 10, None, False, [(5, "cat"), (10, "dog")]),
    ("[cat:dog: 5 ]", 10, None, False, [(5, "cat"), (10, "dog")]),
    ("[a:b:\n3]", 10, None, False, [(3, "a"), (10, "b")]),
    # Forms: [to:when], [from::when], empty from.
    ("[cat::3]", 10, None, False, [(3, "cat"), (10, "")]),
    ("[:dog:3]", 10, None, False, [(3, ""), (10, "dog")]),
    # Not a construct: literal, the rest still parsed.
    ("[cat:dog:.]", 10, None, False, [(10, "[cat:dog:.]")]),
    ("[cat:dog]", 10, None, False, [(10, "[cat:dog]")]),
    ("[a:b:c:3]", 10, None, False, [(10, "[a:b:c:3]")]),
    ("a [b:c:3", 10, None, False, [(10, "a [b:c:3")]),
    ("]a[", 10, None, False, [(10, "]a[")]),
    ("(a:b:c)", 10, None, False, [(10, "(a:b:c)")]),
    ("[a (b:c:2]", 10, None, False, [(10, "[a (b:c:2]")]),
    ("\\[a:b:3]", 10, None, False, [(10, "\\[a:b:3]")]),
    ("[a\\:b:3]", 10, None, False, [(3, ""), (10, "a\\:b")]),
    # Parse failures: the whole prompt, as written.
    ("[cat|dog:3]", 10, None, False, [(10, "[cat|dog:3]")]),
    ("x | y", 10, None, False, [(10, "x | y")]),
    ("a \\", 10, None, False, [(10, "a \\")]),
    # Alternation and nesting.
    ("[a|b|c]", 5, None, False, [(1, "a"), (2, "b"), (3, "c"), (4, "a"), (5, "b")]),
    # The inner alternation is evaluated at the same step as the outer: even steps always give "c".
    ("[a|[b|c]]", 4, None, False, [(1, "a"), (2, "c"), (3, "a"), (4, "c")]),
    ("[[a:b:2]:c:4]", 6, None, False, [(2, "a"), (4, "b"), (6, "c")]),
    ("[a:[b|c]:3]", 5, None, False, [(1, "a"), (2, "a"), (3, "a"), (4, "c"), (5, "b")]),
    ("(a:[b:c:2])", 10, None, False, [(2, "(a:b)"), (10, "(a:c)")]),
    ("[a [b:c:1] d:2]", 5, None, False, [(1, ""), (2, ""), (5, "a c d")]),
    # Hires pass (new timelines): integers continue the first pass, fractions count from 1.
    ("a [b:15] c", 10, 10, False, [(5, "a  c"), (10, "a b c")]),
    ("a [b:5] c", 10, 10, False, [(10, "a b c")]),
    ("[a|b]", 4, 6, False, [(1, "a"), (2, "b"), (3, "a"), (4, "b"), (5, "a"), (6, "b")]),
    # Old timelines: < 1 is a fraction, and the hires pass is scheduled over the first pass's steps.
    ("a [b:0.5] c", 10, None, True, [(5, "a  c"), (10, "a b c")]),
    ("a [b:1.0] c", 10, None, True, [(1, "a  c"), (10, "a b c")]),
    ("a [b:0.5] c", 20, 10, True, [(10, "a  c"), (20, "a b c")]),
    ("a [b:15] c", 20, 10, True, [(15, "a  c"), (20, "a b c")]),
]


@pytest.mark.parametrize(("prompt", "steps", "hires_steps", "old", "expected"), CASES)
def test_schedule_matches_a1111(
    prompt: str, steps: int, hires_steps: int | None, old: bool, expected: Schedule
) -> None:
    assert prompt_schedule(prompt, steps, hires_steps, use_old_scheduling=old) == expected


def test_schedule_is_not_shared_between_calls() -> None:
    first = prompt_schedule("[a:b:2]", 10)
    first.append((99, "x"))
    assert prompt_schedule("[a:b:2]", 10) == [(2, "a"), (10, "b")]
