"""Durable writes, one rule (lmgan.atomic): the file is written in full, fsynced, renamed over its
name, and then its folder is fsynced, in that order, for checkpoints, videos and the decoded-data
cache alike; and the command that measures what the fsyncs cost runs."""

import json
import os

import numpy as np
import pytest

from lmgan import atomic


@pytest.fixture
def recorded(monkeypatch):
    """Every os.fsync (the path its fd is open on, and that file's size then) and os.replace, in
    the order they happen."""
    events = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        events.append(("fsync", path, os.path.getsize(path) if os.path.isfile(path) else "folder"))
        fsync(fd)

    def recording_replace(src, dst):
        events.append(("replace", str(src), str(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    return events


def assert_durable(events, path):
    """Exactly: fsync of the whole temporary, its rename to `path`, fsync of `path`'s folder."""
    assert len(events) == 3, events
    (op1, tmp, size), (op2, src, dst), (op3, folder, kind) = events
    assert (op1, op2, op3) == ("fsync", "replace", "fsync"), events
    assert src == tmp and dst == str(path) and tmp != dst, events
    assert os.path.dirname(tmp) == str(path.parent), "the temporary sits beside the file (one file system)"
    assert size == path.stat().st_size, "fsynced before all of it was written"
    assert not os.path.exists(tmp)
    assert (folder, kind) == (str(path.parent), "folder"), events


def test_a_checkpoint_is_written_fsynced_renamed_then_its_folder_fsynced(tmp_path, recorded):
    import torch

    from lmgan.training import checkpoint
    path = checkpoint.save(tmp_path / "checkpoints" / checkpoint.name_for(7), {"w": torch.arange(10000.0)})
    assert_durable(recorded, path)
    assert checkpoint.load(path)["w"].sum() == sum(range(10000))


def test_a_video_is_written_fsynced_renamed_then_its_folder_fsynced(tmp_path, recorded):
    from lmgan.data.media import write_video
    out = tmp_path / "v.mp4"
    write_video(out, np.zeros((10, 32, 32, 3), np.uint8), 10, audio=np.zeros(16000, np.float32), sample_rate=16000)
    assert_durable(recorded, out)


def test_replacing_and_write_text_follow_the_rule(tmp_path, recorded):
    atomic.write_text(tmp_path / "history.jsonl", "x" * 5000)
    assert_durable(recorded, tmp_path / "history.jsonl")


def test_a_data_cache_entry_fsyncs_its_files_and_itself_before_the_rename(tmp_path, recorded):
    """A cache entry is a folder: each of its files, then the folder, then the rename, then the
    cache folder that holds it."""
    from lmgan.data.dataset import _write_entry
    entry = tmp_path / "data" / "key"
    _write_entry(entry, np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 16), np.float32),
                 np.zeros(800, np.float32), {"source": "x"})
    *files, (op, tmp, kind), rename, last = recorded
    assert (op, kind) == ("fsync", "folder") and os.path.basename(tmp).startswith(".key.tmp"), recorded
    assert [(o, os.path.dirname(p), os.path.basename(p)) for o, p, _ in files] == [
        ("fsync", tmp, name) for name in ("audio.arrow", "frames.arrow", "meta.json")], recorded
    assert [size for *_, size in files] == [(entry / n).stat().st_size for n in ("audio.arrow", "frames.arrow", "meta.json")]
    assert rename == ("replace", tmp, str(entry))
    assert last == ("fsync", str(entry.parent), "folder")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, recorded):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(ValueError), atomic.replacing(path) as tmp:
        tmp.write_text("half")
        raise ValueError
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"] and recorded == []


def test_disk_full_is_recognised_through_torch_and_only_there(tmp_path):
    """torch.save into a file object raises its RuntimeError while handling the OSError; through
    its own stream only the RuntimeError comes, and then the folder's free space decides (a
    folder with room: not a full disk; test_disk_full.py has a full one)."""
    import errno
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    except RuntimeError as e:
        assert atomic.disk_full(e) == errno.ENOSPC
    short = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    assert atomic.disk_full(short) == 0                     # no folder to ask
    assert atomic.disk_full(short, tmp_path) == 0           # room there: some other short write
    assert atomic.disk_full(OSError(errno.EDQUOT, "Disk quota exceeded")) == errno.EDQUOT
    assert atomic.disk_full(OSError(errno.EACCES, "Permission denied")) == 0
    assert atomic.disk_full(RuntimeError("something else")) == 0
    from lmgan.errors import os_error_line
    assert os_error_line(atomic.disk_full_error("/runs/x/ckpt.pt")) == "/runs/x/ckpt.pt: no space left on device"


def test_the_fsync_benchmark_prints_its_figures(tmp_path, capsys):
    """`python -m lmgan.bench.durable_io`, small: the tiny preset's checkpoint, twice (figures are the
    benchmark's to measure, not asserted)."""
    from lmgan.bench.durable_io import main
    assert main(["--presets", "tiny", "--repeats", "2", "--dir", str(tmp_path), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    row, = r["checkpoints"]
    assert row["preset"] == "tiny" and row["repeats"] == 2 and row["mib"] > 0.1 and row["params"] > 0
    assert row["save_s"] >= row["fsync_file_s"] + row["fsync_folder_s"] > 0
    assert r["dir"] == str(tmp_path) and list(tmp_path.iterdir()) == []     # its scratch folder is gone
    assert main(["--presets", "tiny", "--repeats", "1", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fsync file s" in out and "\ntiny " in out
