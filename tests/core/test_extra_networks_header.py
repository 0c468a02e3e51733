"""The pure-Python safetensors header reader: valid files, and hostile ones refused quickly and clearly."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest
from safetensors_files import safetensors_bytes, write_safetensors

from stablenew_qt.core.extra_networks import HeaderError, read_header
from stablenew_qt.core.extra_networks.header import MAX_HEADER_BYTES


def _raw(path: Path, header: bytes, data: bytes = b"") -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


def test_reads_tensors_metadata_and_data_offset(tmp_path: Path) -> None:
    path = write_safetensors(
        tmp_path / "a.safetensors",
        {"x.weight": ("F16", (4, 3)), "x.alpha": ("F32", ())},
        {"ss_output_name": "a"},
    )
    header = read_header(path)
    assert header.tensors["x.weight"].shape == (4, 3) and header.tensors["x.alpha"].numel == 1
    assert header.metadata == {"ss_output_name": "a"}
    assert header.data_offset == path.stat().st_size - (4 * 3 * 2 + 4)


def test_matches_the_safetensors_library(tmp_path: Path) -> None:
    from safetensors import safe_open

    path = write_safetensors(
        tmp_path / "b.safetensors", {"a": ("BF16", (2, 5)), "b": ("I64", (3,))}, {"k": "v"}
    )
    ours = read_header(path)
    with safe_open(str(path), framework="numpy") as handle:
        assert set(handle.keys()) == set(ours.tensors) and handle.metadata() == ours.metadata


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "only 0 bytes long"),
        (struct.pack("<Q", 2**40) + b"{}", "the limit is"),
        (struct.pack("<Q", 100) + b"{}", "does not fit the file"),
        (struct.pack("<Q", 4) + b"[12]", "does not start with '{'"),
        (struct.pack("<Q", 5) + b"{abc}", "not valid JSON"),
        (struct.pack("<Q", 2) + b"\xff\xfe", "does not start"),
    ],
)
def test_broken_prefixes_are_clear_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(HeaderError, match=message) as caught:
        read_header(path)
    assert "bad.safetensors" in str(caught.value)


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"a": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, 4, "unknown dtype"),
        ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, 4, "invalid shape"),
        (
            {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}},
            8,
            "does not match its dtype and shape",
        ),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, 8, "does not start where"),
        (
            {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
            12,
            "the file holds 12 bytes of data",
        ),
        ({"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, 4, "invalid shape"),
        ({"a": "x"}, 0, "not described by an object"),
        ({"__metadata__": {"k": 3}}, 0, "must map strings to strings"),
    ],
)
def test_inconsistent_headers_are_refused(
    tmp_path: Path, header: dict[str, object], data: int, message: str
) -> None:
    path = _raw(tmp_path / "x.safetensors", json.dumps(header).encode(), b"\0" * data)
    with pytest.raises(HeaderError, match=message):
        read_header(path)


def test_duplicate_keys_nesting_bombs_and_huge_numbers_are_refused(tmp_path: Path) -> None:
    cases = {
        "dup": b'{"a": {}, "a": {}}',
        "deep": b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "bigint": b'{"a": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 4]}}',
    }
    for name, header in cases.items():
        path = _raw(tmp_path / f"{name}.safetensors", header)
        started = time.perf_counter()
        with pytest.raises(HeaderError, match="not valid JSON"):
            read_header(path)
        assert time.perf_counter() - started < 2.0, name


def test_the_cap_is_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "claims-a-lot.safetensors"
    path.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{" + b" " * 16)
    with pytest.raises(HeaderError, match="claims"):
        read_header(path)
    small = safetensors_bytes({"a": ("F32", (2,))})
    assert len(small) < 200
