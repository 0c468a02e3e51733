"""The zip archive of a ``torch.save`` checkpoint, read the way torch reads it, or refused.

A zip file can be read in more than one way: a second central directory, a comment hiding another
end record, overlapping or unlisted entries, or compressed entries let two readers see different
files in the same bytes (Python's ``zipfile`` and torch's miniz did, for a crafted detector). So
``TorchArchive`` accepts only the layout ``torch.save`` writes, checked down to the last byte:

- the file starts with the first entry's local header and ends with the end-of-central-directory
  record (no comment), optionally preceded by one consistent zip64 record and locator;
- the central directory lies between the last entry and those records; its entries, in order,
  tile the file from byte 0 without a gap: local header (same name, flags and method), the data,
  and a data descriptor whose values match the central directory's;
- every entry is stored uncompressed (``torch.save`` never compresses), so reading an entry never
  inflates anything: memory is bounded by the file, and ``data.pkl`` by ``MAX_PICKLE_BYTES``;
- names are ASCII, unique, under one top folder, with exactly one ``data.pkl`` and no other pickle.

With every byte accounted for there is one reading only; the archive is then opened with torch's
own reader (``torch._C.PyTorchFileReader``, what ``torch.load`` uses) on the same bytes, and its
list of records, their offsets and sizes, and the ``data.pkl`` it returns must equal ours.
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from dataclasses import dataclass
from typing import Any

MAX_DETECTOR_BYTES = 512 * 2**20
"""Largest detector file read (the biggest ADetailer YOLO, yolov8x-seg, is about 140 MB)."""

MAX_PICKLE_BYTES = 4 * 2**20
"""Largest ``data.pkl`` accepted (a yolov8x-seg checkpoint's is about 0.3 MB: the weights are
separate records; the pickle holds only the module tree)."""

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_END = struct.Struct("<4sHHHHIIH")
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_END = struct.Struct("<4sQHHIIQQQQ")
_DESCRIPTOR32 = struct.Struct("<4sIII")
_DESCRIPTOR64 = struct.Struct("<4sIQQ")
_FLAG_ENCRYPTED = 0x0001
_FLAG_DESCRIPTOR = 0x0008
_FLAG_UTF8 = 0x0800
_ZIP64_EXTRA = 0x0001
_MAX16, _MAX32 = 0xFFFF, 0xFFFFFFFF


class ArchiveRefused(Exception):
    """The bytes are not a torch zip checkpoint laid out as ``torch.save`` writes it; says why."""


@dataclass(frozen=True)
class _Entry:
    name: str
    header_offset: int
    data_offset: int
    size: int
    crc: int
    flags: int


class TorchArchive:
    """A validated torch zip checkpoint held in memory: its ``pickle`` and its tensor records.

    Raises ``ArchiveRefused`` from the constructor when the layout is anything but the one
    described in the module docstring.
    """

    def __init__(self, data: bytes) -> None:
        if len(data) > MAX_DETECTOR_BYTES:
            raise ArchiveRefused(f"it is larger than {MAX_DETECTOR_BYTES // 2**20} MiB")
        if not data.startswith(b"PK\x03\x04"):  # torch.load unpickles anything else directly
            raise ArchiveRefused("it is not a torch zip checkpoint (old torch format or not a model)")
        self._data = data
        entries = _entries(data)
        self._prefix = _common_prefix(entries)
        self._records = {entry.name[len(self._prefix) :]: entry for entry in entries}
        pickles = [name for name in self._records if name.endswith(".pkl")]
        if pickles != ["data.pkl"]:
            found = ", ".join(pickles) or "none"
            raise ArchiveRefused(
                f"expected one data.pkl in the archive (TorchScript files are not models), found {found}"
            )
        if self._records["data.pkl"].size > MAX_PICKLE_BYTES:
            raise ArchiveRefused(
                f"its data.pkl is {self._records['data.pkl'].size} bytes; a detector's is far smaller "
                f"(at most {MAX_PICKLE_BYTES // 2**20} MiB accepted)"
            )
        self.storage_bytes = sum(
            entry.size for name, entry in self._records.items() if name.startswith("data/")
        )
        """Bytes in the tensor records together: what the tensors may hold at most."""
        self._reader = _torch_reader(data)
        self._check_torch_agrees()
        self.pickle = self._torch_record("data.pkl")
        self.byteorder = self._byteorder()

    def has_record(self, name: str) -> bool:
        return name in self._records

    def storage(self, key: str, nbytes: int) -> Any:
        """The ``torch.UntypedStorage`` of record ``data/<key>``, which must hold exactly ``nbytes``."""
        import torch

        entry = self._records.get(f"data/{key}")
        if entry is None:
            raise ArchiveRefused(f"its pickle names a tensor record data/{key!r} the archive lacks")
        if entry.size != nbytes:
            raise ArchiveRefused(
                f"tensor record data/{key} holds {entry.size} bytes, its pickle says {nbytes}"
            )
        try:  # what torch.serialization._load does with a record
            record = self._reader.get_storage_from_record(f"data/{key}", nbytes, torch.UntypedStorage)
            return record._typed_storage()._untyped_storage
        except Exception as exc:  # RuntimeError, or UnicodeDecodeError for its message
            raise ArchiveRefused(f"torch cannot read tensor record data/{key} ({_first_line(exc)})") from None

    def _check_torch_agrees(self) -> None:
        try:
            names = set(self._reader.get_all_records())
            if names != set(self._records):
                raise ArchiveRefused("torch's zip reader lists other records than the central directory")
            for name, entry in self._records.items():
                seen = (
                    self._reader.get_record_header_offset(name),
                    self._reader.get_record_offset(name),
                    self._reader.get_record_size(name),
                )
                if seen != (entry.header_offset, entry.data_offset, entry.size):
                    raise ArchiveRefused(f"torch's zip reader places record {name} elsewhere")
        except ArchiveRefused:
            raise
        except Exception as exc:  # RuntimeError, or UnicodeDecodeError for its message
            raise ArchiveRefused(f"torch's zip reader refuses it ({_first_line(exc)})") from None

    def _torch_record(self, name: str) -> bytes:
        entry = self._records[name]
        ours = self._data[entry.data_offset : entry.data_offset + entry.size]
        if zlib.crc32(ours) != entry.crc:
            raise ArchiveRefused(f"record {name} fails its CRC check")
        try:
            theirs = bytes(self._reader.get_record(name))
        except Exception as exc:  # RuntimeError, or UnicodeDecodeError for its message
            raise ArchiveRefused(f"torch cannot read record {name} ({_first_line(exc)})") from None
        if theirs != ours:
            raise ArchiveRefused(f"torch's zip reader returns other bytes for {name}")
        return theirs

    def _byteorder(self) -> str:
        if not self.has_record("byteorder"):
            return "little"  # what torch.load assumes for files without the record
        value = self._torch_record("byteorder")
        if value not in (b"little", b"big"):
            raise ArchiveRefused(f"its byteorder record says {value[:16]!r}")
        return value.decode()

    @property
    def native_byteorder(self) -> bool:
        return self.byteorder == sys.byteorder


def _torch_reader(data: bytes) -> Any:
    import torch

    try:
        return torch._C.PyTorchFileReader(io.BytesIO(data))
    except Exception as exc:  # RuntimeError, or UnicodeDecodeError for its message
        raise ArchiveRefused(f"torch's zip reader refuses it ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):  # pybind could not decode torch's message
        return "its message is not text"
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


# -- layout ------------------------------------------------------------------------------------


def _entries(data: bytes) -> list[_Entry]:
    count, directory_offset, directory_end = _end_records(data)
    entries: list[_Entry] = []
    position = directory_offset
    for _ in range(count):
        entry, position = _central_entry(data, position, directory_end)
        entries.append(entry)
    if position != directory_end:
        raise ArchiveRefused("its central directory holds more than its entries")
    _check_tiling(data, entries, directory_offset)
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        raise ArchiveRefused("its zip archive repeats a file name")
    return entries


def _end_records(data: bytes) -> tuple[int, int, int]:
    """(entry count, central directory start, central directory end) from the records at the end."""
    if len(data) < _END.size:
        raise ArchiveRefused("its zip archive is truncated")
    end_at = len(data) - _END.size
    sig, disk, directory_disk, disk_entries, entries, size, offset, comment = _END.unpack_from(data, end_at)
    if sig != b"PK\x05\x06" or comment != 0:
        raise ArchiveRefused("its zip archive does not end with a plain end-of-central-directory record")
    if disk != 0 or directory_disk != 0 or disk_entries != entries:
        raise ArchiveRefused("it is a multi-disk zip archive")
    directory_end = end_at
    locator_at = end_at - _ZIP64_LOCATOR.size
    if locator_at >= 0 and data[locator_at : locator_at + 4] == b"PK\x06\x07":
        entries, size, offset, directory_end = _zip64_records(data, locator_at, (entries, size, offset))
    elif entries == _MAX16 or _MAX32 in (size, offset):
        raise ArchiveRefused("its end record points to a zip64 record that is missing")
    if offset + size != directory_end:
        raise ArchiveRefused("its central directory does not end where the end records begin")
    return entries, offset, directory_end


def _zip64_records(data: bytes, locator_at: int, classic: tuple[int, int, int]) -> tuple[int, int, int, int]:
    _, record_disk, record_at, disks = _ZIP64_LOCATOR.unpack_from(data, locator_at)
    if record_disk != 0 or disks != 1 or record_at + _ZIP64_END.size != locator_at:
        raise ArchiveRefused("its zip64 locator does not point to the record just before it")
    sig, record_size, _, _, disk, directory_disk, disk_entries, entries, size, offset = (
        _ZIP64_END.unpack_from(data, record_at)
    )
    if sig != b"PK\x06\x06" or record_size != _ZIP64_END.size - 12 or disk != 0 or directory_disk != 0:
        raise ArchiveRefused("its zip64 end record is malformed")
    if disk_entries != entries:
        raise ArchiveRefused("it is a multi-disk zip archive")
    for classic_value, value, sentinel in zip(
        classic, (entries, size, offset), (_MAX16, _MAX32, _MAX32), strict=True
    ):
        if classic_value not in (value, sentinel):
            raise ArchiveRefused("its zip64 and classic end records disagree")
    return entries, size, offset, record_at


def _central_entry(data: bytes, at: int, limit: int) -> tuple[_Entry, int]:
    if at + _CENTRAL.size > limit:
        raise ArchiveRefused("its central directory is truncated")
    (
        sig,
        _,
        _,
        flags,
        method,
        _,
        _,
        crc,
        compressed,
        size,
        name_len,
        extra_len,
        comment_len,
        disk,
        _,
        _,
        offset,
    ) = _CENTRAL.unpack_from(data, at)
    name_at = at + _CENTRAL.size
    end = name_at + name_len + extra_len + comment_len
    if sig != b"PK\x01\x02" or end > limit:
        raise ArchiveRefused("its central directory is malformed")
    raw_name = data[name_at : name_at + name_len]
    extra = data[name_at + name_len : name_at + name_len + extra_len]
    size, compressed, offset, disk = _apply_zip64(extra, size, compressed, offset, disk)
    name = _entry_name(raw_name)
    if method != 0 or compressed != size:
        raise ArchiveRefused(f"record {name} is compressed; torch.save stores every record uncompressed")
    if flags & ~(_FLAG_DESCRIPTOR | _FLAG_UTF8) or disk != 0 or comment_len:
        raise ArchiveRefused(f"record {name} uses zip features torch.save never writes")
    return _Entry(name, offset, -1, size, crc, flags), end


def _apply_zip64(
    extra: bytes, size: int, compressed: int, offset: int, disk: int
) -> tuple[int, int, int, int]:
    fields: dict[int, bytes] = {}
    position = 0
    while position < len(extra):
        if position + 4 > len(extra):
            raise ArchiveRefused("a central directory extra field is truncated")
        field_id, length = struct.unpack_from("<HH", extra, position)
        if field_id in fields or position + 4 + length > len(extra):
            raise ArchiveRefused("a central directory extra field is malformed or repeated")
        fields[field_id] = extra[position + 4 : position + 4 + length]
        position += 4 + length
    zip64 = fields.get(_ZIP64_EXTRA)
    wanted = [size == _MAX32, compressed == _MAX32, offset == _MAX32, disk == _MAX16]
    if zip64 is None:
        if any(wanted):
            raise ArchiveRefused("a record needs a zip64 extra field that is missing")
        return size, compressed, offset, disk
    formats = "".join(code for code, needed in zip("QQQI", wanted, strict=True) if needed)
    if struct.calcsize("<" + formats) != len(zip64):
        raise ArchiveRefused("a zip64 extra field does not match its record")
    values = iter(struct.unpack("<" + formats, zip64))
    size = next(values) if wanted[0] else size
    compressed = next(values) if wanted[1] else compressed
    offset = next(values) if wanted[2] else offset
    disk = next(values) if wanted[3] else disk
    return size, compressed, offset, disk


def _entry_name(raw: bytes) -> str:
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ArchiveRefused("a record name is not ASCII") from None
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or any(part in ("", ".", "..") for part in parts):
        raise ArchiveRefused(f"record name {name[:80]!r} is not a plain relative path")
    return name


def _check_tiling(data: bytes, entries: list[_Entry], directory_offset: int) -> None:
    """Each entry's local header, data and descriptor start where the previous one ended."""
    position = 0
    for index, entry in enumerate(entries):
        if entry.header_offset != position:
            raise ArchiveRefused(f"record {entry.name} does not start where the previous one ends")
        data_offset = _local_header(data, entry)
        entries[index] = entry = _Entry(
            entry.name, entry.header_offset, data_offset, entry.size, entry.crc, entry.flags
        )
        position = data_offset + entry.size
        if entry.flags & _FLAG_DESCRIPTOR:
            position += _descriptor_length(data, entry, position)
        if position > directory_offset:
            raise ArchiveRefused(f"record {entry.name} runs into the central directory")
    if position != directory_offset:
        raise ArchiveRefused("bytes lie between the last record and the central directory")


def _local_header(data: bytes, entry: _Entry) -> int:
    at = entry.header_offset
    if at + _LOCAL.size > len(data):
        raise ArchiveRefused(f"the local header of {entry.name} is truncated")
    sig, _, flags, method, _, _, crc, compressed, size, name_len, extra_len = _LOCAL.unpack_from(data, at)
    name_at = at + _LOCAL.size
    if sig != b"PK\x03\x04" or data[name_at : name_at + name_len] != entry.name.encode("ascii"):
        raise ArchiveRefused(f"the local header of {entry.name} does not match the central directory")
    if flags != entry.flags or method != 0 or flags & _FLAG_ENCRYPTED:
        raise ArchiveRefused(f"the local header of {entry.name} does not match the central directory")
    if not flags & _FLAG_DESCRIPTOR and (crc, compressed, size) != (entry.crc, entry.size, entry.size):
        raise ArchiveRefused(f"the local header of {entry.name} does not match the central directory")
    return int(name_at + name_len + extra_len)


def _descriptor_length(data: bytes, entry: _Entry, at: int) -> int:
    for layout in (_DESCRIPTOR32, _DESCRIPTOR64):
        if at + layout.size <= len(data):
            sig, crc, compressed, size = layout.unpack_from(data, at)
            follows = data[at + layout.size : at + layout.size + 4]
            if (
                sig == b"PK\x07\x08"
                and (crc, compressed, size) == (entry.crc, entry.size, entry.size)
                and follows in (b"PK\x03\x04", b"PK\x01\x02", b"PK\x06\x06", b"PK\x05\x06")
            ):
                return layout.size
    raise ArchiveRefused(f"the data descriptor of {entry.name} does not match the central directory")


def _common_prefix(entries: list[_Entry]) -> str:
    if not entries:
        raise ArchiveRefused("its zip archive is empty")
    folder = entries[0].name.partition("/")[0] + "/"
    if any(not entry.name.startswith(folder) or entry.name == folder for entry in entries):
        raise ArchiveRefused("its records do not all lie in one top folder, as torch.save writes them")
    return folder
