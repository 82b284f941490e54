"""`pricer train-worker`: what it refuses before joining a run (the run itself: tests/e2e/test_nodes.py)."""

from __future__ import annotations

import yaml

from pricer.cli import main


def _checkout(root, train: dict) -> None:
    (root / "stages").mkdir()
    (root / "stages" / "train.py").write_text("")
    (root / "params.yaml").write_text(yaml.safe_dump({"train": train}))


def test_outside_a_checkout_it_says_where_to_run_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert main(["train-worker", "mlp"]) == 1
    err = capsys.readouterr().err
    assert "is not a pricer checkout (no params.yaml and stages/train.py)" in err and err.count("\n") == 1


def test_a_single_node_run_or_a_missing_node_rank_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("PRICER_NODE_RANK", raising=False)
    _checkout(tmp_path, {"nodes": 1})
    assert main(["train-worker", "mlp"]) == 1
    assert "train.nodes is 1: set it to the number of machines on every node" in capsys.readouterr().err
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"nodes": 4}}))
    assert main(["train-worker", "resnet"]) == 1
    assert "set PRICER_NODE_RANK to this machine's node number, 1..3" in capsys.readouterr().err
    monkeypatch.setenv("PRICER_NODE_RANK", "one")
    assert main(["train-worker", "resnet"]) == 1
    assert "PRICER_NODE_RANK must be a node number" in capsys.readouterr().err
