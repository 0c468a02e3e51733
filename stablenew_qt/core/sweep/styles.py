"""A1111 prompt styles (``modules/styles.py``, A1111 1.10): ``styles.csv`` read, applied, saved.

A ``styles.csv`` has the columns ``name``, ``prompt``, ``negative_prompt`` (an old ``text``
column stands for ``prompt``; other columns are ignored). It is read as A1111 reads it: UTF-8
with or without a byte-order mark, Python's ``csv`` with ``skipinitialspace``, quoted fields
that hold commas, quotes (``""``) and line breaks, and rows whose name starts with ``#`` skipped.
Several files are read in order; a later style of the same name replaces an earlier one.

Applying a style (A1111's ``merge_prompts``): a style prompt containing ``{prompt}`` has it
replaced by the prompt; otherwise the two are joined with ``", "`` (empty ones left out).
Several styles apply in the order given, to the prompt and the negative prompt alike.

A1111 writes no style names into infotext: the image records the styled prompt, and pasting
it back runs :func:`extract_styles` to find which styles' text it contains and takes that text
out again, so pressing Generate re-applies each style once. We do the same, matching first on the
stripped texts as A1111 1.7-1.10 do, then on texts passed through A1111's clean step
(:func:`clean_prompt_text`), so a prompt whose commas or spaces were tidied still shows its styles.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..outputs import atomic_replace_bytes

__all__ = [
    "STYLE_COLUMNS",
    "PromptStyle",
    "StyleLibrary",
    "apply_styles",
    "clean_prompt_text",
    "extract_style_text",
    "extract_styles",
    "merge_prompts",
    "read_styles_csv",
    "save_style",
    "styles_in_prompt",
]

STYLE_COLUMNS = ("name", "prompt", "negative_prompt")
_PLACEHOLDER = "{prompt}"
#: A1111's clean step: a run of commas with white space after them (and one trailing comma).
_COMMA_RUN = re.compile(r"(,+\s+)+,?")
_SPACE_RUN = re.compile(r"\s{2,}")


@dataclass(frozen=True)
class PromptStyle:
    """One style: its name, its prompt and negative prompt texts, and the file it came from."""

    name: str
    prompt: str = ""
    negative_prompt: str = ""
    path: Path | None = None


def merge_prompts(style_prompt: str, prompt: str) -> str:
    """A1111's ``merge_prompts``: ``{prompt}`` in the style is replaced by ``prompt`` (every
    occurrence); otherwise the stripped prompt and style are joined with ``", "``."""
    if _PLACEHOLDER in style_prompt:
        return style_prompt.replace(_PLACEHOLDER, prompt)
    return ", ".join(part for part in (prompt.strip(), style_prompt.strip()) if part)


def apply_styles(prompt: str, style_prompts: Iterable[str]) -> str:
    """``prompt`` with each style text merged in turn (the first style is applied first)."""
    for style_prompt in style_prompts:
        prompt = merge_prompts(style_prompt, prompt)
    return prompt


def clean_prompt_text(text: str) -> str:
    """The clean step of A1111's styles (``clean_text``): every run of commas that has white space
    after it (``", , "``, ``",, "``, a comma and a line break), and one comma right after the run,
    becomes ``", "``; then every run of two or more white-space characters (line breaks too)
    becomes one space; then spaces and commas are stripped from both ends. ``"a,b"`` (no space
    after the comma) stays."""
    text = _COMMA_RUN.sub(", ", text)
    text = _SPACE_RUN.sub(" ", text)
    return text.strip(", ")


def _remainder(style_text: str, prompt: str) -> str | None:
    """The prompt without the style's text when it matches (both already stripped or cleaned)."""
    if _PLACEHOLDER in style_text:
        if style_text.count(_PLACEHOLDER) > 1:
            return None
        left, _, right = style_text.partition(_PLACEHOLDER)
        if prompt.startswith(left) and prompt.endswith(right):
            return prompt[len(left) : len(prompt) - len(right)]
        return None
    if prompt.endswith(style_text):
        rest = prompt[: len(prompt) - len(style_text)]
        return rest[:-2] if rest.endswith(", ") else rest
    return None


def extract_style_text(style_text: str, prompt: str) -> tuple[bool, str]:
    """A1111's ``extract_style_text_from_prompt``: (True, the prompt without the style's text) when
    the style's text wraps the prompt (``{prompt}`` styles) or ends it (others, with a ``", "``
    before it dropped); else (False, ``prompt``). A style with ``{prompt}`` twice never matches.

    Two tries, in order. First on the stripped texts, as A1111 1.7-1.10 match: for a prompt the
    style made, the remainder is the text that re-applying the style turns back into it. Then on the
    cleaned texts (:func:`clean_prompt_text`), as A1111's clean-step version matches, so a prompt
    whose commas or spaces were edited still shows its style; the remainder is then the cleaned
    prompt without the style (as that version returns it). A style whose text cleans to nothing
    (only commas and spaces) is not matched by the second try: it would match every prompt.
    """
    remainder = _remainder(style_text.strip(), prompt.strip())
    if remainder is None:
        cleaned_style = clean_prompt_text(style_text)
        if cleaned_style:
            remainder = _remainder(cleaned_style, clean_prompt_text(prompt))
    return (False, prompt) if remainder is None else (True, remainder)


def _extract_one(style: PromptStyle, prompt: str, negative: str) -> tuple[bool, str, str]:
    if not style.prompt and not style.negative_prompt:
        return False, prompt, negative
    matched, new_prompt = extract_style_text(style.prompt, prompt)
    if not matched:
        return False, prompt, negative
    matched, new_negative = extract_style_text(style.negative_prompt, negative)
    if not matched:
        return False, prompt, negative
    return True, new_prompt, new_negative


def extract_styles(
    styles: Sequence[PromptStyle], prompt: str, negative_prompt: str
) -> tuple[tuple[str, ...], str, str]:
    """A1111's ``extract_styles_from_prompt``: the names of the styles whose text the prompts
    contain (in the order they were applied) and the prompts with that text removed.

    Styles are tried in ``styles`` order, the last-applied first: the first one that matches
    both prompts is taken out and the search starts again without it.
    """
    remaining = list(styles)
    found: list[str] = []
    while True:
        for style in remaining:
            matched, new_prompt, new_negative = _extract_one(style, prompt, negative_prompt)
            if matched:
                prompt, negative_prompt = new_prompt, new_negative
                remaining.remove(style)
                found.append(style.name)
                break
        else:
            return tuple(reversed(found)), prompt, negative_prompt


def styles_in_prompt(library: StyleLibrary, prompt: str, negative_prompt: str) -> tuple[str, ...]:
    """The names of ``library``'s styles whose text ``prompt`` and ``negative_prompt`` already hold
    (:func:`extract_styles`, in the order they were applied): what to show as "Styles used" after
    restoring an image, and which ticked styles Apply leaves out so none is applied twice."""
    return library.extract(prompt, negative_prompt)[0]


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"styles file {str(path)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None


def read_styles_csv(path: Path) -> list[PromptStyle]:
    """The styles of one ``styles.csv``, in file order. Raises ConfigError for a file that is not
    UTF-8, is not CSV, or has no ``name`` and ``prompt`` (or ``text``) columns."""
    text = _decode(path, Path(path).read_bytes())
    reader = csv.DictReader(io.StringIO(text, newline=""), skipinitialspace=True)
    styles: list[PromptStyle] = []
    try:
        fields = reader.fieldnames or []
        prompt_key = "prompt" if "prompt" in fields else "text"
        if "name" not in fields or prompt_key not in fields:
            raise ConfigError(
                f"styles file {str(path)!r} needs the columns {', '.join(STYLE_COLUMNS)}; "
                f"it has {', '.join(fields) or 'none'}"
            )
        for row in reader:
            name = row.get("name") or ""
            if not name or name.startswith("#"):
                continue
            styles.append(
                PromptStyle(name, row.get(prompt_key) or "", row.get("negative_prompt") or "", Path(path))
            )
    except csv.Error as exc:
        raise ConfigError(
            f"styles file {str(path)!r}, line {reader.line_num}: not valid CSV: {exc}"
        ) from None
    return styles


class StyleLibrary:
    """The styles of several files, read in order (a later style replaces an earlier one of the
    same name, keeping its place in the list, as A1111's dictionary does)."""

    def __init__(self, styles: Iterable[PromptStyle] = ()) -> None:
        self._styles: dict[str, PromptStyle] = {}
        for style in styles:
            self._styles[style.name] = style

    @classmethod
    def load(cls, paths: Sequence[Path]) -> StyleLibrary:
        """Read ``paths`` in order (for example an A1111 install's ``styles.csv``, then ours, so
        ours win). Files that do not exist are skipped; a broken one raises ConfigError."""
        styles: list[PromptStyle] = []
        for path in paths:
            if Path(path).is_file():
                styles += read_styles_csv(Path(path))
        return cls(styles)

    @property
    def styles(self) -> tuple[PromptStyle, ...]:
        return tuple(self._styles.values())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._styles)

    def get(self, name: str) -> PromptStyle:
        """The style called ``name``; ConfigError with the closest names for an unknown one."""
        style = self._styles.get(name)
        if style is None:
            close = difflib.get_close_matches(name, list(self._styles), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"unknown style {name!r}{hint}", "styles")
        return style

    def apply(self, prompt: str, negative_prompt: str, names: Sequence[str]) -> tuple[str, str]:
        """The prompt and negative prompt with the styles ``names`` applied in order."""
        chosen = [self.get(name) for name in names]
        return (
            apply_styles(prompt, (s.prompt for s in chosen)),
            apply_styles(negative_prompt, (s.negative_prompt for s in chosen)),
        )

    def extract(self, prompt: str, negative_prompt: str) -> tuple[tuple[str, ...], str, str]:
        """:func:`extract_styles` over this library's styles."""
        return extract_styles(self.styles, prompt, negative_prompt)


def _read_rows(path: Path) -> list[list[str]]:
    if not path.exists():
        return [list(STYLE_COLUMNS)]
    text = _decode(path, path.read_bytes())
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), skipinitialspace=True))
    except csv.Error as exc:
        raise ConfigError(f"styles file {str(path)!r} is not valid CSV ({exc}); it was not changed") from None
    return rows or [list(STYLE_COLUMNS)]


def _encode_rows(rows: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)  # excel dialect: minimal quoting, CRLF, as A1111 writes
    return out.getvalue().encode("utf-8-sig")


def save_style(path: Path, style: PromptStyle) -> Path:
    """Add ``style`` to the ``styles.csv`` at ``path``, or replace the row of that name, and return
    ``path``. Every other row, comment row and column is kept (A1111 rewrites the file with its
    three columns only). The file is replaced atomically; the previous version is kept as
    ``styles.csv.bak``, as A1111 keeps it. The folder must exist."""
    path = Path(path)
    rows = _read_rows(path)
    header = rows[0]
    prompt_column = "prompt" if "prompt" in header or "text" not in header else "text"
    for column in ("name", prompt_column, "negative_prompt"):
        if column not in header:
            header.append(column)
    values = {"name": style.name, prompt_column: style.prompt, "negative_prompt": style.negative_prompt}
    name_at = header.index("name")
    target = next((row for row in rows[1:] if len(row) > name_at and row[name_at] == style.name), None)
    if target is None:
        target = [""] * len(header)
        rows.append(target)
    target.extend([""] * (len(header) - len(target)))
    for column, value in values.items():
        target[header.index(column)] = value
    if path.exists():
        atomic_replace_bytes(path.with_name(path.name + ".bak"), path.read_bytes())
    return atomic_replace_bytes(path, _encode_rows(rows))
