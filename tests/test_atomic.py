import errno
import functools
import io
import json
import os
import signal
import stat

import pytest
import torch

from pricer import atomic
from pricer.atomic import OutputError, atomic_directory, atomic_path, write_json, write_whole


def test_write_json_is_canonical(tmp_path):
    write_json(tmp_path / "a.json", {"b": 1, "a": 2})
    write_json(tmp_path / "b.json", {"a": 2, "b": 1})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert json.loads((tmp_path / "a.json").read_text()) == {"a": 2, "b": 1}


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_non_finite_json_is_refused(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "m.json", {"mae": float("nan")})
    assert not (tmp_path / "m.json").exists()


def test_atomic_directory_replaces_whole_directory(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    with atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
        assert not (target / "new.txt").exists()
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "partial.txt").write_text("x")
        raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_full_disk_is_one_error_naming_the_output_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_text("old")
    with pytest.raises(OutputError, match=r"checkpoint.pt: cannot write it \(No space left on device\)"), \
            atomic_path(target) as tmp:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    with pytest.raises(OutputError, match="model: cannot write it"), atomic_directory(tmp_path / "model") as tmp:
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))


def test_a_file_where_the_output_directory_should_be_is_one_error_naming_the_output(tmp_path):
    (tmp_path / "metrics").write_text("not a directory")
    with pytest.raises(OutputError, match="metrics/out.json: cannot write it"):
        write_json(tmp_path / "metrics" / "out.json", {})


def test_other_errors_inside_the_block_pass_through_unchanged(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out.txt"):
        open(tmp_path / "missing-input.txt")  # noqa: SIM115 - the open must fail (FileNotFoundError); nothing to close


@pytest.mark.parametrize("umask, file_mode, directory_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_written_files_and_directories_follow_the_umask(tmp_path, umask, file_mode, directory_mode):
    previous = os.umask(umask)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        with atomic_directory(tmp_path / "model") as tmp:
            (tmp / "weights.pt").write_bytes(b"w")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == directory_mode
    assert stat.S_IMODE((tmp_path / "model" / "weights.pt").stat().st_mode) == file_mode


def test_outputs_resolving_outside_the_root_are_refused_and_links_inside_are_not(tmp_path):
    from pricer.atomic import refuse_outputs_outside

    root, other = tmp_path / "project", tmp_path / "other"
    (root / "data" / "real").mkdir(parents=True)
    other.mkdir()
    (root / "data" / "raw").symlink_to(root / "data" / "real")  # a link within the project is fine
    (root / "models").symlink_to(other)
    (root / "loop").symlink_to(root / "loop")
    refuse_outputs_outside(root, ["data/raw", "metrics/mlp.json", "checkpoints/mlp.pt"])
    with pytest.raises(OutputError, match=rf"^models/mlp: resolves to {other}/mlp, outside the project {root} "):
        refuse_outputs_outside(root, ["data/raw", "models/mlp"])
    with pytest.raises(OutputError, match=r"^loop/x: "):
        refuse_outputs_outside(root, ["loop/x"])
    assert sorted(p.name for p in other.iterdir()) == []


class _SigtermMidWrite(io.BufferedWriter):
    """A file that sends this process SIGTERM during its third write: mid-way through torch.save."""

    writes = 0

    def write(self, data):
        written = super().write(data)
        type(self).writes += 1
        if type(self).writes == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return written


def _stage_handler(signum, _frame):  # what pricer.console installs in every stage
    raise SystemExit(128 + signum)


def test_sigterm_during_a_torch_save_ends_as_terminated_after_a_whole_file(tmp_path, monkeypatch):
    # torch's zip writer, cut by the handler's SystemExit, raised its own RuntimeError on the way
    # out: the stage ended with a traceback and status 1, not as terminated (143)
    monkeypatch.setattr(_SigtermMidWrite, "writes", 0)
    monkeypatch.setattr(atomic, "open", lambda path, mode: _SigtermMidWrite(io.FileIO(path, mode)), raising=False)
    state = {name: torch.arange(1000.0) + index for index, name in enumerate("abcdef")}
    previous = signal.signal(signal.SIGTERM, _stage_handler)
    try:
        target = tmp_path / "weights.pt"
        with pytest.raises(SystemExit) as exit_info:
            write_whole(target, functools.partial(torch.save, state))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert _SigtermMidWrite.writes > 3  # the signal came mid-way, and the save went on
    assert exit_info.value.code == 128 + signal.SIGTERM
    saved = torch.load(target, weights_only=True)
    assert saved.keys() == state.keys() and all(torch.equal(saved[name], state[name]) for name in state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.pt"]

