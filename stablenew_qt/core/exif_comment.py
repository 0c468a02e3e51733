"""The EXIF UserComment as text, as A1111, SwarmUI and Fooocus write it into JPEG and WebP files.

Its own module because both the A1111 reader (``infotext``) and the other generators' readers
(``metadata``) need it, and ``metadata`` builds on ``infotext``: here neither imports the other.
"""

from __future__ import annotations

from PIL import ExifTags, Image


def exif_user_comment(exif: Image.Exif) -> str | None:
    """The EXIF UserComment as text: from the Exif IFD (A1111, SwarmUI) or, where some writers
    put it (Fooocus), from IFD0. None when there is none."""
    for comment in (exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.UserComment), exif.get(0x9286)):
        if isinstance(comment, bytes | str):
            text = decode_user_comment(comment)
            if text.strip():
                return text
    return None


# EXIF UserComment character-code prefixes (EXIF 2.3 table 9); "undefined" is eight zero bytes.
_USER_COMMENT_CODES = {
    b"UNICODE\0": "utf-16",
    b"ASCII\0\0\0": "utf-8",
    b"JIS\0\0\0\0\0": "shift_jis",
    b"\0" * 8: "utf-8",
}


def decode_user_comment(comment: bytes | str) -> str:
    """EXIF UserComment text: an 8-byte character-code prefix, then the text.

    "UNICODE" is UTF-16 in the byte order its byte-order mark says or, without one, the order its
    zero bytes suggest (A1111 writes big-endian, other tools little-endian); a "UNICODE" body with
    no zero byte at all is UTF-8 mislabelled. "ASCII" and undefined bodies are read as UTF-8
    (ASCII's superset, which writers put there in practice). A comment without a known prefix is
    taken whole, as Pillow stores a plain string. Never raises: bad bytes become U+FFFD.
    """
    if isinstance(comment, str):
        return comment.rstrip("\0")
    code = _USER_COMMENT_CODES.get(comment[:8])
    body = comment[8:] if code else comment
    if code == "utf-16" and 0 in body:
        return _decode_utf16(body).rstrip("\0")
    return body.decode(code if code == "shift_jis" else "utf-8", errors="replace").rstrip("\0")


def _decode_utf16(body: bytes) -> str:
    if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return body.decode("utf-16", errors="replace")
    # For mostly-ASCII text the zero bytes sit first in big-endian, second in little-endian.
    big_endian = body[0::2].count(0) >= body[1::2].count(0)
    return body.decode("utf-16-be" if big_endian else "utf-16-le", errors="replace")
