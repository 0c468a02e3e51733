"""styles.csv compatibility with A1111: its CSV dialect, {prompt}, several styles in order,
saving, and extraction on restore so nothing is applied twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.sweep import (
    PromptStyle,
    StyleLibrary,
    apply_styles,
    extract_styles,
    merge_prompts,
    save_style,
)
from stablenew_qt.core.sweep.styles import extract_style_text, read_styles_csv

A1111_FILE = (
    "\ufeffname,prompt,negative_prompt\r\n"
    'Cinematic,"cinematic still of {prompt}, shallow depth of field","anime, cartoon"\r\n'
    'Film, "kodak portra 400, grain", \r\n'
    '"Quoted, name","say ""cheese""",\r\n'
    'Multi,"line one\r\nline two",\r\n'
    "# a comment row,ignored,ignored\r\n"
    "Empty neg,watercolor\r\n"
)


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_reads_a1111_styles_csv(tmp_path: Path) -> None:
    styles = read_styles_csv(write(tmp_path / "styles.csv", A1111_FILE))
    assert [s.name for s in styles] == ["Cinematic", "Film", "Quoted, name", "Multi", "Empty neg"]
    by_name = {s.name: s for s in styles}
    assert by_name["Cinematic"].prompt == "cinematic still of {prompt}, shallow depth of field"
    assert by_name["Film"].prompt == "kodak portra 400, grain"  # skipinitialspace: the quote after ", "
    assert by_name["Quoted, name"].prompt == 'say "cheese"'
    assert by_name["Multi"].prompt == "line one\r\nline two"
    assert by_name["Empty neg"].negative_prompt == ""  # a short row: missing fields are empty
    assert by_name["Film"].path == tmp_path / "styles.csv"


def test_old_text_column_and_extra_columns(tmp_path: Path) -> None:
    styles = read_styles_csv(write(tmp_path / "s.csv", "name,text,extra\nOld,oil painting,whatever\n"))
    assert styles == [PromptStyle("Old", "oil painting", "", tmp_path / "s.csv")]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("title,body\nx,y\n", "needs the columns name, prompt, negative_prompt"),
        ("name,prompt\nx," + "a" * 200_000 + "\n", "not valid CSV"),  # past csv's field size limit
    ],
)
def test_broken_files_are_clear_errors(tmp_path: Path, content: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        read_styles_csv(write(tmp_path / "styles.csv", content))
    (tmp_path / "latin1.csv").write_bytes("name,prompt\ncafé,x\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_styles_csv(tmp_path / "latin1.csv")


def test_an_unclosed_quote_runs_to_the_end_as_in_a1111(tmp_path: Path) -> None:
    styles = read_styles_csv(write(tmp_path / "styles.csv", 'name,prompt\nx,"unclosed\ny,z\n'))
    assert [(s.name, s.prompt) for s in styles] == [("x", "unclosed\ny,z\n")]


def test_merge_rules_are_a1111s() -> None:
    assert merge_prompts("cinematic still of {prompt}, film", "a fox") == "cinematic still of a fox, film"
    assert merge_prompts("{prompt} and {prompt}", "x") == "x and x"
    assert merge_prompts("  grain ", " a fox ") == "a fox, grain"
    assert merge_prompts("grain", "") == "grain"
    assert merge_prompts("", "a fox ") == "a fox"
    assert apply_styles("a fox", ["{prompt}, film", "cinematic {prompt}"]) == "cinematic a fox, film"


def test_library_order_overrides_and_apply(tmp_path: Path) -> None:
    a1111 = write(tmp_path / "a1111.csv", A1111_FILE)
    ours = write(tmp_path / "ours.csv", "name,prompt,negative_prompt\nFilm,fujifilm,digital\nNew,neon,\n")
    library = StyleLibrary.load([a1111, tmp_path / "missing.csv", ours])
    assert library.names == ("Cinematic", "Film", "Quoted, name", "Multi", "Empty neg", "New")
    assert library.get("Film").prompt == "fujifilm"  # the later file wins, keeping the place
    prompt, negative = library.apply("a fox", "blurry", ["Cinematic", "Film"])
    assert prompt == "cinematic still of a fox, shallow depth of field, fujifilm"
    assert negative == "blurry, anime, cartoon, digital"
    with pytest.raises(ConfigError, match="unknown style 'Flim'; did you mean 'Film'"):
        library.apply("a fox", "", ["Flim"])


def test_a1111_extraction_examples() -> None:
    # The examples of A1111's extract_style_text_from_prompt docstring.
    assert extract_style_text("masterpiece", "1girl, art by greg, masterpiece") == (
        True,
        "1girl, art by greg",
    )
    assert extract_style_text("masterpiece, {prompt}", "masterpiece, 1girl, art by greg") == (
        True,
        "1girl, art by greg",
    )
    assert extract_style_text("masterpiece, {prompt}", "exquisite, 1girl, art by greg") == (
        False,
        "exquisite, 1girl, art by greg",
    )
    assert extract_style_text("{prompt} {prompt}", "a a") == (False, "a a")  # A1111 raises here


def test_restore_reapplies_nothing_twice(tmp_path: Path) -> None:
    library = StyleLibrary.load([write(tmp_path / "styles.csv", A1111_FILE)])
    styled = library.apply("a fox in snow", "blurry", ["Film", "Cinematic"])
    names, prompt, negative = library.extract(*styled)
    assert names == ("Film", "Cinematic")
    assert (prompt, negative) == ("a fox in snow", "blurry")
    assert library.apply(prompt, negative, names) == styled  # generate again: the same text, once
    untouched = extract_styles(library.styles, "a plain prompt", "")
    assert untouched == ((), "a plain prompt", "")


def test_save_style_keeps_every_other_row_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path / "styles.csv",
        "\ufeffname,prompt,negative_prompt,notes\r\n# header note,,,\r\n"
        "Film,grain,,keep me\r\nOther,x,y,z\r\n",
    )
    original = path.read_bytes()
    save_style(path, PromptStyle("Film", "kodak, grain", "digital"))
    assert (tmp_path / "styles.csv.bak").read_bytes() == original  # A1111 keeps the previous file too
    after_first = path.read_bytes()
    save_style(path, PromptStyle("New, quoted", 'a "b"\nc', ""))
    assert (tmp_path / "styles.csv.bak").read_bytes() == after_first
    text = path.read_bytes().decode("utf-8")
    assert text.startswith("\ufeffname,prompt,negative_prompt,notes\r\n# header note,,,\r\n")
    assert 'Film,"kodak, grain",digital,keep me\r\n' in text
    assert "Other,x,y,z\r\n" in text
    assert [s.name for s in read_styles_csv(path)] == ["Film", "Other", "New, quoted"]
    assert read_styles_csv(path)[2].prompt == 'a "b"\nc'
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_save_style_creates_a_new_file_a1111_reads(tmp_path: Path) -> None:
    path = save_style(tmp_path / "styles.csv", PromptStyle("Mine", "{prompt}, bokeh", "noise"))
    assert (
        path.read_bytes() == '\ufeffname,prompt,negative_prompt\r\nMine,"{prompt}, bokeh",noise\r\n'.encode()
    )
    assert not (tmp_path / "styles.csv.bak").exists()
