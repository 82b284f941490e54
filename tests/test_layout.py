import json

import pytest

from pricer.layout import ArtifactError, in_dvc_temp_copy, project_root, read_json_output


def test_json_outputs_read_back_or_fail_naming_the_file_and_the_stage(tmp_path):
    report = tmp_path / "fetch_report.json"
    assert read_json_output(report, "fetch", missing_ok=True) == {}
    with pytest.raises(ArtifactError, match=r"fetch_report.json: missing; run `dvc repro fetch`"):
        read_json_output(report, "fetch")
    report.write_text(json.dumps({"kind": "synthetic"}))
    assert read_json_output(report, "fetch") == {"kind": "synthetic"}
    for damaged in ('{"kind": "synth', "[1, 2]", "\xff\xfe"):
        report.write_bytes(damaged.encode("latin-1"))
        with pytest.raises(ArtifactError, match=r"fetch_report.json: .*rerun `dvc repro -f fetch`"):
            read_json_output(report, "fetch")


def test_project_root_steps_out_of_dvc_temp_experiments(tmp_path):
    temp_copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12"
    temp_copy.mkdir(parents=True)
    assert project_root(temp_copy, environ={}) == tmp_path / "repo"
    assert project_root(tmp_path, environ={"DVC_ROOT": str(temp_copy)}) == tmp_path / "repo"
    assert project_root(tmp_path / "repo", environ={}) == tmp_path / "repo"
    assert project_root(tmp_path / "repo" / ".dvc" / "tmp" / "exps", environ={}) == tmp_path / "repo"


def test_a_temp_experiment_copy_is_recognised(tmp_path):
    inside = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12" / "data"
    inside.mkdir(parents=True)
    assert in_dvc_temp_copy(inside) and not in_dvc_temp_copy(tmp_path / "repo")


def test_project_root_is_found_from_a_subdirectory(tmp_path):
    (tmp_path / "repo" / ".dvc").mkdir(parents=True)
    (tmp_path / "repo" / "src" / "deep").mkdir(parents=True)
    assert project_root(tmp_path / "repo" / "src" / "deep", environ={}) == tmp_path / "repo"
    assert project_root(tmp_path, environ={}) == tmp_path  # no project above: the directory itself
