"""Mending Tune's snapshot: a checkpoint the last snapshot names but Tune deleted after it is
replaced by the trial's newest, so --resume continues instead of erroring the trial."""

import json
import pickle

from lmgan.sweep.snapshot import mend_missing_checkpoints


def write_experiment(root, named: list[str], present: list[str]):
    """A snapshot in Tune's layout: per trial, its state and its run metadata, the checkpoint
    manager cloudpickled (here pickled) with full paths inside."""
    manager = pickle.dumps({"results": [f"{root}/t1/{n}" for n in named]}).hex()
    state = {"trial_data": [[json.dumps({"trial_id": "t1", "status": "RUNNING"}),
                             json.dumps({"last_result": {"checkpoint_dir_name": named[-1]},
                                         "checkpoint_manager": {"_type": "CLOUDPICKLE_FALLBACK",
                                                                "value": manager}})]]}
    (root / "experiment_state-2026-11-30_10-00-00.json").write_text(json.dumps(state))
    for name in present:
        (root / "t1" / name).mkdir(parents=True)
        (root / "t1" / name / "ckpt.pt").write_text(name)


def test_a_deleted_checkpoint_is_replaced_by_the_newest(tmp_path):
    write_experiment(tmp_path, ["checkpoint_000002", "checkpoint_000003"], ["checkpoint_000002", "checkpoint_000005"])
    assert mend_missing_checkpoints(tmp_path) == ["t1/checkpoint_000003 (from checkpoint_000005)"]
    assert (tmp_path / "t1" / "checkpoint_000003" / "ckpt.pt").read_text() == "checkpoint_000005"
    assert mend_missing_checkpoints(tmp_path) == []      # nothing left to mend
    assert sorted(p.name for p in (tmp_path / "t1").iterdir()) == [
        "checkpoint_000002", "checkpoint_000003", "checkpoint_000005"]


def test_nothing_newer_nothing_mended(tmp_path):
    write_experiment(tmp_path, ["checkpoint_000004"], ["checkpoint_000001"])
    assert mend_missing_checkpoints(tmp_path) == []
    assert mend_missing_checkpoints(tmp_path / "none") == []
