import json

import pytest

from pricer.layout import ArtifactError, read_json_output


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
