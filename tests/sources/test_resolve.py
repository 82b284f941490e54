"""Tests for pricer.sources.resolve: which kind of source a string names."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from pricer.sources import DataError, resolve_source

from .frames import hub_layout, items, write_jsonl


@pytest.fixture
def source_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    items(10).to_parquet("items.parquet")
    write_jsonl(tmp_path / "items.jsonl", items(10))
    (tmp_path / "items.json").write_text(items(3).to_json(orient="records"))
    (tmp_path / "table.csv").write_text("summary,price\na,1\n")
    hub_layout(tmp_path / "hub_dir", {"train": items(10)})
    datasets.DatasetDict({"train": datasets.Dataset.from_pandas(items(4))}).save_to_disk("saved_dict")
    datasets.Dataset.from_pandas(items(4)).save_to_disk("saved_single")
    (tmp_path / "notes_dir").mkdir()
    (tmp_path / "notes_dir" / "notes.txt").write_text("no data here")
    hub_layout(tmp_path / "owner" / "name", {"train": items(3)})  # a local path spelled like a Hub id
    return tmp_path


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("synthetic", "synthetic"),
        ("items.parquet", "local_file"),
        ("./items.parquet", "local_file"),
        ("items.jsonl", "local_file"),
        ("items.json", "local_file"),
        ("hub_dir", "hub_layout_dir"),
        ("saved_dict", "saved_dataset"),
        ("saved_single", "saved_dataset"),
        ("owner/name", "hub_layout_dir"),  # an existing path wins over the Hub
        ("ed-donner/items_lite", "hub"),
        ("ed-donner/items_full", "hub"),
        ("someone/data.v2", "hub"),
    ],
)
def test_resolve_source_kinds(source_tree: Path, source: str, kind: str) -> None:
    assert resolve_source(source).kind == kind


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing.parquet", r"missing\.parquet: no such file"),
        ("data/missing.jsonl", r"data/missing\.jsonl: no such file"),
        ("./missing", r"\./missing: no such file"),
        ("/definitely/not/here", r"/definitely/not/here: no such file"),
        ("~/pricer-no-such-dir-3f9a", r"~/pricer-no-such-dir-3f9a: no such file"),
        ("table.csv", r"table\.csv: unsupported file type '\.csv'"),
        ("notes_dir", r"notes_dir: directory has no parquet files and is not a datasets\.save_to_disk"),
        ("nonsense", r"'nonsense': not a known data source; expected 'synthetic'.*parquet.*save_to_disk.*Hub"),
        ("", r"'': not a known data source"),
        ("a/b/c", r"'a/b/c': not a known data source"),
    ],
)
def test_resolve_source_errors(source_tree: Path, source: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        resolve_source(source)


def test_symlinks_that_resolve_nowhere_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("loop.parquet").symlink_to("loop.parquet")
    Path("dangling.jsonl").symlink_to("moved/items.jsonl")
    with pytest.raises(DataError, match=r"^loop\.parquet: a symbolic link that loops back on itself"):
        resolve_source("loop.parquet")
    with pytest.raises(DataError, match=r"^dangling\.jsonl: a symbolic link to moved/items\.jsonl, which does not"):
        resolve_source("dangling.jsonl")


def test_a_symlink_to_a_source_resolves_to_its_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    items(5).to_parquet("items.parquet")
    Path("link.parquet").symlink_to("items.parquet")
    assert resolve_source("link.parquet") == resolve_source("items.parquet")


def test_a_missing_source_in_a_temp_experiment_says_that_such_runs_see_only_tracked_files(tmp_path, monkeypatch):
    temp_copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12"
    temp_copy.mkdir(parents=True)
    monkeypatch.chdir(temp_copy)
    for source in ("items_lite", "./items_lite", "items.parquet"):
        with pytest.raises(DataError,
                           match=r"`dvc exp run --temp` or queued experiment.*only the files git or DVC track"):
            resolve_source(source)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as raised:
        resolve_source("./items_lite")
    assert "--temp" not in str(raised.value)
