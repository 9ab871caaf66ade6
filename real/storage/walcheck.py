"""Tell a torn WAL tail from a corrupt WAL frame, which SQLite cannot.

Theory of operation
-------------------
In WAL mode SQLite appends each transaction to the `-wal` file as frames (a
24-byte header and one page); each frame header carries the WAL's two salts
and a checksum chained over every frame before it. On recovery SQLite keeps
the frames up to the last commit frame whose chain is intact and silently
ignores everything after the first broken frame. That is right for a torn
tail (a crash in the middle of the last, unsynced transaction) but wrong
for bit rot in an earlier, synced transaction: every later transaction would
be dropped without a word, and Raft would forget votes and acknowledged
entries.

With `synchronous=FULL` each commit is fsynced before the next transaction
starts, so only the last transaction can be torn, and a torn transaction
holds at most one commit frame (its last). This module reads the frame
headers (not the checksums; SQLite has already checked those) before the
database is used: `scan_wal` counts, past the number of frames SQLite
accepted (`valid_frames`, from `PRAGMA wal_checkpoint`), the frames that
carry the current salts and how many of them are commit frames. Two or more
commit frames past the break mean a synced transaction was damaged:
`WalVerdict.corrupt`. Fewer mean a torn tail that SQLite truncates (logically:
the bytes stay until the WAL is reused).

A damaged commit frame followed by exactly one more transaction looks the
same as a torn tail; that case is indistinguishable here and is treated as
torn (docs/real-storage.md).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

WAL_MAGICS = (0x377F0682, 0x377F0683)
WAL_HEADER = struct.Struct(">8I")  # magic, version, page size, ckpt seq, salt1, salt2, cks1, cks2
FRAME_HEADER = struct.Struct(">6I")  # page, db size after commit (0: not a commit), salts, cks
# The largest WAL this check reads the frame headers of (bigger: not checked).
WAL_SCAN_MAX_BYTES = 1 << 32


@dataclass(frozen=True, slots=True, kw_only=True)
class WalScan:
    """The frame headers of a WAL file, as written (before SQLite's checks)."""

    frames: int  # whole frames in the file
    salted: tuple[tuple[int, bool], ...]  # (frame number, is a commit) carrying current salts
    partial_bytes: int  # bytes of a trailing partial frame
    bad_header: bool  # a non-empty header that is not a WAL header


@dataclass(frozen=True, slots=True, kw_only=True)
class WalVerdict:
    torn_tail: bool  # frames or bytes past what SQLite accepted
    corrupt: str | None  # why a synced transaction looks damaged, or None
    dropped_frames: int


def scan_wal(path: Path) -> WalScan | None:
    """The frame headers of the WAL at `path`; None if there is none to check."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size < WAL_HEADER.size or size > WAL_SCAN_MAX_BYTES:
        return None
    with path.open("rb") as wal:
        header = WAL_HEADER.unpack(wal.read(WAL_HEADER.size))
        magic, _, page_size, _, salt1, salt2, _, _ = header
        if magic not in WAL_MAGICS or not _valid_page_size(page_size):
            return WalScan(frames=0, salted=(), partial_bytes=0, bad_header=any(header))
        frame_bytes = FRAME_HEADER.size + page_size
        frames, partial = divmod(size - WAL_HEADER.size, frame_bytes)
        salted: list[tuple[int, bool]] = []
        for number in range(frames):
            wal.seek(WAL_HEADER.size + number * frame_bytes)
            _, commit_pages, frame_salt1, frame_salt2, _, _ = FRAME_HEADER.unpack(
                wal.read(FRAME_HEADER.size))
            if (frame_salt1, frame_salt2) == (salt1, salt2):
                salted.append((number, commit_pages != 0))
    return WalScan(frames=frames, salted=tuple(salted), partial_bytes=partial, bad_header=False)


def judge(scan: WalScan | None, valid_frames: int) -> WalVerdict:
    """Compare what was written (`scan`) with what SQLite accepted."""
    if scan is None:
        return WalVerdict(torn_tail=False, corrupt=None, dropped_frames=0)
    if scan.bad_header:
        return WalVerdict(torn_tail=False, corrupt="the WAL header is not a SQLite WAL header",
                          dropped_frames=scan.frames)
    past = [(number, commit) for number, commit in scan.salted if number >= valid_frames]
    commits_past = sum(1 for _, commit in past if commit)
    corrupt = None
    if commits_past >= 2:
        corrupt = (f"WAL frame {valid_frames + 1} is damaged but {commits_past} committed "
                   "transactions follow it")
    return WalVerdict(torn_tail=bool(past) or scan.partial_bytes > 0, corrupt=corrupt,
                      dropped_frames=len(past))


def _valid_page_size(page_size: int) -> bool:
    return 512 <= page_size <= 65536 and page_size & (page_size - 1) == 0


__all__ = ["WAL_SCAN_MAX_BYTES", "WalScan", "WalVerdict", "judge", "scan_wal"]
