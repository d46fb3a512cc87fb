"""Training history: reading it back, and record_epoch under crashes and concurrency."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gai_meta.errors import SourceError, UsageError
from gai_meta.history import (
    EpochRecord,
    best_epoch,
    history_entries,
    load_history_file,
    read_history,
    record_epoch,
    write_history,
)

ROOT = Path(__file__).resolve().parents[1]


def _save_ckpt(path: Path, **fields: Any) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"model_state_dict": {"w": torch.zeros(4)}, "optimizer_state_dict": {}, **fields}, path
    )


def _metrics(exp: Path, entries: list[dict[str, Any]]) -> Path:
    path = exp / "checkpoints" / "training_metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries))
    return path


def test_from_training_metrics_sorted_and_coco_kept_when_nonempty(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    src = _metrics(
        exp,
        [
            {"epoch": 2, "train_loss": 0.5, "val_loss": 0.6, "coco_metrics": {"mAP": 0.3}},
            {"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "coco_metrics": {}},
        ],
    )
    for path in (exp, exp / "checkpoints"):  # either folder works
        hist = read_history(path)
        assert hist.source == src
        assert hist.experiment_dir == exp
        assert history_entries(hist.epochs) == [
            {"epoch": 1, "train_loss": 0.9, "val_loss": 0.8},
            {"epoch": 2, "train_loss": 0.5, "val_loss": 0.6, "coco_metrics": {"mAP": 0.3}},
        ]
        assert hist.default_output == exp / "metadata" / "training_history.json"


def test_metrics_file_preferred_over_checkpoints(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    _metrics(exp, [{"epoch": 1, "train_loss": 1.0, "val_loss": 2.0}])
    (exp / "checkpoints" / "epoch_001.pt").write_bytes(b"not read at all")
    assert [e.val_loss for e in read_history(exp).epochs] == [2.0]


def test_duplicate_epochs_keep_the_last_and_nan_becomes_null(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    path = exp / "checkpoints" / "training_metrics.json"
    path.parent.mkdir(parents=True)
    # Python's json.dump writes NaN for a diverged loss; a resumed run repeats epoch 1.
    path.write_text(
        '[{"epoch": 1, "train_loss": 3.0, "val_loss": 3.0},'
        ' {"epoch": 1, "train_loss": NaN, "val_loss": 2.5, "lr": 0.01}]'
    )
    assert history_entries(read_history(exp).epochs) == [
        {"epoch": 1, "train_loss": None, "val_loss": 2.5, "lr": 0.01}
    ]


def test_from_checkpoints_skips_those_without_epoch(tmp_path: Path) -> None:
    ck = tmp_path / "exp" / "checkpoints"
    _save_ckpt(ck / "epoch_010.pt", epoch=10, train_loss=0.25, val_loss=0.5)
    _save_ckpt(ck / "epoch_002.pt", epoch=2, train_loss=1.5, val_loss=None)
    _save_ckpt(ck / "epoch_005.pt", train_loss=0.7)  # no epoch field
    (ck / "epoch_006.pt").write_bytes(b"\x00" * 10)  # not a checkpoint
    (ck / "epoch_007.pt").write_bytes((ck / "epoch_010.pt").read_bytes()[:200])  # truncated
    (ck / "best.pt").write_bytes(b"ignored: not epoch_*.pt")
    hist = read_history(tmp_path / "exp")
    assert hist.source == ck
    assert history_entries(hist.epochs) == [
        {"epoch": 2, "train_loss": 1.5, "val_loss": None},
        {"epoch": 10, "train_loss": 0.25, "val_loss": 0.5},
    ]
    assert hist.skipped[0] == (ck / "epoch_005.pt", "no 'epoch' field")
    assert [p.name for p, _ in hist.skipped] == ["epoch_005.pt", "epoch_006.pt", "epoch_007.pt"]
    assert hist.skipped[2][1].startswith("not a readable checkpoint: ")
    assert hist.skipped[1][1] == (
        "refused by weights_only=True loading (Unsupported operand 0): corrupt, "
        "or needs code execution to load"
    )


def test_checkpoint_tensor_losses(tmp_path: Path) -> None:
    import torch

    ck = tmp_path / "checkpoints"
    _save_ckpt(ck / "epoch_001.pt", epoch=torch.tensor(1), train_loss=torch.tensor(0.5))
    hist = read_history(ck)
    assert hist.experiment_dir == tmp_path
    assert history_entries(hist.epochs) == [{"epoch": 1, "train_loss": 0.5, "val_loss": None}]


def test_unsafe_checkpoint_is_skipped_not_executed(tmp_path: Path) -> None:
    import pickle

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    ck = tmp_path / "checkpoints"
    ck.mkdir()
    (ck / "epoch_001.pt").write_bytes(pickle.dumps({"epoch": 1, "x": Evil()}))
    _save_ckpt(ck / "epoch_002.pt", epoch=2, train_loss=1.0)
    hist = read_history(ck)
    assert [e.epoch for e in hist.epochs] == [2]
    assert hist.skipped[0][0].name == "epoch_001.pt"
    assert "refused by weights_only=True loading" in hist.skipped[0][1]
    assert not (tmp_path / "pwned").exists()


def test_falls_back_to_recorded_history(tmp_path: Path) -> None:
    record_epoch(tmp_path, epoch=1, train_loss=2.0)
    hist = read_history(tmp_path)
    assert hist.source == tmp_path / "metadata" / "training_history.json"
    assert [e.train_loss for e in hist.epochs] == [2.0]


def test_write_history_default_and_out(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    _metrics(exp, [{"epoch": 1, "train_loss": 1.0, "val_loss": 2.0}])
    hist = read_history(exp)
    written = write_history(hist)
    assert written == exp / "metadata" / "training_history.json"
    assert json.loads(written.read_text()) == [{"epoch": 1, "train_loss": 1.0, "val_loss": 2.0}]
    other = write_history(hist, tmp_path / "o" / "h.json")
    assert json.loads(other.read_text()) == json.loads(written.read_text())


# --------------------------------------------------------------------------- errors


def test_not_a_folder(tmp_path: Path) -> None:
    f = tmp_path / "file.json"
    f.write_text("[]")
    with pytest.raises(SourceError, match="is a file, expected an experiment folder"):
        read_history(f)
    with pytest.raises(SourceError, match="no such folder"):
        read_history(tmp_path / "missing")


def test_folder_without_history(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(SourceError) as info:
        read_history(tmp_path)
    assert "holds neither checkpoints/training_metrics.json nor checkpoints/epoch_*.pt" in str(
        info.value
    )
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[{"epoch": 1,', "is not valid JSON"),
        ("", "is not valid JSON"),
        ('{"epoch": 1}', "expected a JSON list of epoch entries, found dict"),
        ('[{"train_loss": 1}]', "entry 0: has no 'epoch'"),
        ('[{"epoch": 1}, {"epoch": "two"}]', "entry 1: epoch is 'two'"),
        ('[{"epoch": -1}]', "entry 0: epoch is -1, expected a whole number 0 or more"),
        ('[{"epoch": 1, "val_loss": "low"}]', "entry 0: val_loss is 'low'"),
        ('[{"epoch": 1, "coco_metrics": [1]}]', "entry 0: coco_metrics is list"),
        ("[3]", "entry 0: expected an object"),
    ],
)
def test_corrupt_metrics_file(tmp_path: Path, text: str, needle: str) -> None:
    path = _metrics(tmp_path, [])
    path.write_text(text)
    with pytest.raises(SourceError) as info:
        read_history(tmp_path)
    assert needle in str(info.value)
    assert str(info.value).startswith(str(path))


def test_best_epoch() -> None:
    epochs = [
        EpochRecord(1, 1.0, None),
        EpochRecord(2, 0.9, 0.7),
        EpochRecord(3, 0.8, 0.4),
        EpochRecord(4, 0.7, 0.4),  # tie: the earlier epoch wins
    ]
    best = best_epoch(epochs)
    assert best is not None and best.epoch == 3
    assert best_epoch([EpochRecord(1, 1.0, None)]) is None


# --------------------------------------------------------------------------- record_epoch


def test_record_epoch_appends_replaces_and_sorts(tmp_path: Path) -> None:
    path = record_epoch(tmp_path, epoch=2, train_loss=0.5, val_loss=0.6)
    assert path == tmp_path / "metadata" / "training_history.json"
    record_epoch(tmp_path, epoch=1, train_loss=0.9, coco_metrics={"mAP": 0.1}, lr=0.01)
    record_epoch(tmp_path, epoch=2, train_loss=0.4, val_loss=0.45, coco_metrics={})
    assert json.loads(path.read_text()) == [
        {"epoch": 1, "train_loss": 0.9, "val_loss": None, "coco_metrics": {"mAP": 0.1}, "lr": 0.01},
        {"epoch": 2, "train_loss": 0.4, "val_loss": 0.45},
    ]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"epoch": "1", "train_loss": 1.0}, "epoch is '1'"),
        ({"epoch": True, "train_loss": 1.0}, "epoch is True"),
        ({"epoch": 1, "train_loss": "x"}, "train_loss is 'x'"),
        ({"epoch": 1, "train_loss": 1.0, "coco_metrics": [1]}, "coco_metrics is list"),
        ({"epoch": 1, "train_loss": 1.0, "note": object()}, "pass metrics as numbers"),
    ],
)
def test_record_epoch_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(UsageError, match="record_epoch: ") as info:
        record_epoch(tmp_path, **kwargs)
    assert needle in str(info.value)
    assert not (tmp_path / "metadata" / "training_history.json").exists()


def test_record_epoch_refuses_to_clobber_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "metadata" / "training_history.json"
    path.parent.mkdir()
    path.write_text("{oops")
    with pytest.raises(SourceError, match="is not valid JSON"):
        record_epoch(tmp_path, epoch=1, train_loss=1.0)
    assert path.read_text() == "{oops"


def test_record_epoch_failed_replace_leaves_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = record_epoch(tmp_path, epoch=1, train_loss=1.0)
    before = path.read_bytes()

    def fail(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gai_meta.atomic.os.replace", fail)
    with pytest.raises(OSError):
        record_epoch(tmp_path, epoch=2, train_loss=0.5)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [
        ".training_history.json.lock",
        "training_history.json",  # no temp file left behind
    ]


_KILLED_WRITER = """
import sys, time
import gai_meta.atomic as atomic
from gai_meta.history import record_epoch
flag = sys.argv[2]
def stall(*args):
    open(flag, "w").close()  # the temp file is complete, the replace has not happened
    time.sleep(60)
atomic.os.replace = stall
record_epoch(sys.argv[1], epoch=2, train_loss=0.5)
"""


def test_process_killed_mid_write_leaves_previous_file(tmp_path: Path) -> None:
    path = record_epoch(tmp_path, epoch=1, train_loss=1.0)
    before = path.read_bytes()
    flag = tmp_path / "flag"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(tmp_path), str(flag)], cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 30
        while not flag.exists():
            assert proc.poll() is None, "writer exited early"
            assert time.monotonic() < deadline, "writer never reached the replace"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # dies holding the lock, temp file written
    finally:
        proc.wait(timeout=30)
    assert path.read_bytes() == before
    # the lock died with the process: the next writer is not blocked
    record_epoch(tmp_path, epoch=3, train_loss=0.25)
    assert [e["epoch"] for e in json.loads(path.read_text())] == [1, 3]


_CONCURRENT_WRITER = """
import sys
from gai_meta.history import record_epoch
worker, m = int(sys.argv[2]), int(sys.argv[3])
for j in range(m):
    record_epoch(sys.argv[1], epoch=worker * m + j, train_loss=float(worker), val_loss=float(j))
"""


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    n, m = 4, 25
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CONCURRENT_WRITER, str(tmp_path), str(w), str(m)], cwd=ROOT
        )
        for w in range(n)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * n
    entries = json.loads((tmp_path / "metadata" / "training_history.json").read_text())
    # worker w writes epochs w*m .. w*m+m-1, so together exactly 0 .. n*m-1
    assert [e["epoch"] for e in entries] == list(range(n * m))
    assert all(e["train_loss"] == float(e["epoch"] // m) for e in entries)
    assert load_history_file(tmp_path / "metadata" / "training_history.json")[-1].epoch == 99


def test_history_module_does_not_import_torch() -> None:
    code = "import sys, gai_meta.history; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


def test_fixture_checkpoints_in_training_system_format(tmp_path: Path) -> None:
    import shutil

    exp = tmp_path / "exp"
    shutil.copytree(ROOT / "fixtures" / "tiny-experiment", exp)
    (exp / "checkpoints" / "training_metrics.json").unlink()
    hist = read_history(exp)
    assert hist.source == exp / "checkpoints" and hist.skipped == ()
    # the same losses the fixture's training_metrics.json listed (checked in test_schemas)
    assert history_entries(hist.epochs) == [
        {"epoch": 1, "train_loss": 0.140682, "val_loss": 0.023325},
        {"epoch": 2, "train_loss": 0.140548, "val_loss": 0.023516},
    ]


def test_loss_curve() -> None:
    from gai_meta.cli._views import loss_curve

    epochs = [EpochRecord(1, 4.0, None), EpochRecord(2, 2.0, 1.0), EpochRecord(3, 0.0, 3.0)]
    # shared scale 0..4, bar index = round(v / 4 * 7): 4 -> 7 █, 2 -> round(3.5) = 4 ▅,
    # 0 -> 0 ▁, 1 -> round(1.75) = 2 ▃, 3 -> round(5.25) = 5 ▆; missing -> blank
    assert loss_curve(epochs) == [
        "train █▅▁",
        "val    ▃▆",
        "      scale 0 (▁) .. 4 (█), epochs 1..3",
    ]
    assert loss_curve([EpochRecord(1, None, None)]) == []
    # 4 epochs into 2 buckets: means (4+2)/2 = 3 and (0+0)/2 = 0 -> round(3/4*7) = 5 ▆, ▁
    many = [EpochRecord(i, v, None) for i, v in enumerate([4.0, 2.0, 0.0, 0.0], 1)]
    assert loss_curve(many, width=2)[0] == "train ▆▁"


def test_legacy_format_checkpoint_is_read_without_mmap(tmp_path: Path) -> None:
    import torch

    ck = tmp_path / "checkpoints"
    ck.mkdir()
    # the pre-1.6 format cannot be memory-mapped; it is read plainly
    torch.save(
        {"epoch": 4, "train_loss": 0.5}, ck / "epoch_004.pt", _use_new_zipfile_serialization=False
    )
    hist = read_history(tmp_path)
    assert hist.skipped == ()
    assert history_entries(hist.epochs) == [{"epoch": 4, "train_loss": 0.5, "val_loss": None}]
