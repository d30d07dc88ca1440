"""Atomic, durable file replacement: a reader finds the old file or the new one, never half of
either, and a power cut after the call returns keeps the new one.

One rule for every file lmgan must not lose or find half-written (checkpoints, the decoded-data
cache, videos, plots, run records): write a temporary beside it, fsync the temporary, rename it
over the name, fsync the folder (the rename is an entry of the folder: without that fsync a power
cut can undo it). `replacing` does all four around a block that writes the temporary; `commit`
does the last three for a writer that manages its own temporary (a video encoder, a folder).

A full disk is reported the same way wherever it strikes: an OSError (ENOSPC) naming the file
that was being written, not its temporary (`disk_full_error`), recognised also where the writer
hides the errno (`disk_full`: torch.save's "unexpected pos").
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# What torch's zip writer says when a write came up short; with a file name (its own C++ stream)
# no errno survives, so the folder's free space decides (`disk_full`).
_SHORT_WRITE = ("unexpected pos", "PytorchStreamWriter failed writing", "iostream error")
NEARLY_FULL = 256 << 10  # bytes free below which a short write is a full disk (after one, ~0)


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or a folder by name (Linux flushes an inode's pages whichever fd asks)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Durably put the finished temporary `tmp` (a file, or a folder of files) at `path`: fsync
    it (a folder's files, then the folder), rename it over `path`, fsync `path`'s folder. A
    folder is not renamed over a folder that holds anything (OSError): the first writer wins."""
    tmp, path = Path(tmp), Path(path)
    if tmp.is_dir():
        for f in sorted(tmp.rglob("*")):
            if f.is_file():
                fsync_path(f)
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds, `commit` it to `path`; when
    it fails, remove it. The temporary keeps the suffix, so writers that infer the format from
    the name (PIL, matplotlib, numpy) write the right one. A full disk, in the block or in the
    commit, raises `disk_full_error(path)`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        with naming_full_disk(path, tmp.parent):   # asked before the temporary that filled it goes
            yield tmp
            commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def naming_full_disk(path: str | os.PathLike, folder: str | os.PathLike | None = None) -> Iterator[None]:
    """A full disk inside the block is raised as `disk_full_error(path)`: the file lmgan was
    writing, not the temporary or the library that hit it (`folder`: see `disk_full`)."""
    try:
        yield
    except Exception as e:
        if code := disk_full(e, folder):
            raise disk_full_error(path, code) from e
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def disk_full(exc: BaseException, folder: str | os.PathLike | None = None) -> int:
    """ENOSPC or EDQUOT where `exc` means the disk (or the user's quota) is full, else 0: that
    errno on `exc` or on an exception it was raised from or while handling (torch.save into a
    file object raises a RuntimeError while handling the OSError); or, given the `folder` written
    to, ENOSPC for torch's short-write RuntimeError while that folder's file system has less than
    NEARLY_FULL free."""
    seen, todo = set(), [exc]
    short_write = False
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            return e.errno
        short_write |= isinstance(e, RuntimeError) and any(s in str(e) for s in _SHORT_WRITE)
        todo += [e.__cause__, e.__context__]
    if short_write and folder is not None:
        try:
            st = os.statvfs(folder)
        except OSError:
            return 0
        return errno.ENOSPC if st.f_bavail * st.f_frsize < NEARLY_FULL else 0
    return 0


def disk_full_error(path: str | os.PathLike, code: int = errno.ENOSPC) -> OSError:
    """The OSError a full disk is reported as: the file lmgan was writing and the system's words
    ("No space left on device"); lmgan's command line prints it as its one line, a sweep trial
    records it as its error (lmgan.errors.os_error_line)."""
    return OSError(code, os.strerror(code), str(path))
