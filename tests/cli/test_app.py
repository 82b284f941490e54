"""The ``pricer`` command line: help, usage errors, verbosity, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pricer
from pricer.cli import main

from .conftest import csv_rows


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "predict" in out and "models" in out and "docs/comparing.md" in out

    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = capsys.readouterr().out
    for words in ("--text-column", "--format", "--model", "one product per line", "exit status", "--input-format",
                  "--batch-size", "--verbose", "--quiet"):
        assert words in out

    with pytest.raises(SystemExit):
        main(["models", "--help"])
    assert "version" in capsys.readouterr().out

    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = capsys.readouterr().out
    for words in ("95% percentile-bootstrap interval", "--resamples", "--json", "workspace",
                  "no detectable difference"):
        assert words in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: pricer" in capsys.readouterr().err


def test_bad_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as done:
        main(["predict", "--format", "xml", "a lamp"])
    assert done.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_verbosity(project, capsys):
    assert main(["predict", "-q", "a lamp"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["predict", "-v", "a lamp"]) == 0
    assert "DEBUG: loaded mlp" in capsys.readouterr().err


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_pricing_from_a_pipe(root, output):
    """`python -m pricer.cli predict` reading stdin one row at a time, stopped mid-way: it has
    opened its temporary output beside ``output`` and waits for more rows."""
    env = dict(os.environ, PYTHONPATH=str(Path(pricer.__file__).parents[1]), CI="true")
    process = subprocess.Popen(
        [sys.executable, "-m", "pricer.cli", "predict", "-m", "models/mlp", "--batch-size", "1", "-o", str(output)],
        cwd=root, env=env, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a shell starts background jobs with SIGINT ignored and children inherit that; pricer
        # then rightly ignores Ctrl-C, so give the child the disposition of a foreground command
        preexec_fn=_default_sigint,
    )
    try:
        process.stdin.write("Title: a lamp\n")
        process.stdin.flush()
        deadline = time.monotonic() + 120
        while not list(root.glob(f".{output.name}.*.tmp*")):
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "waited 120 s for `pricer predict` to open its temporary output"
            time.sleep(0.05)
    except BaseException:
        process.kill()  # not left behind, holding its pipes
        process.wait(timeout=30)
        raise
    return process


@pytest.mark.parametrize("signal_name, status, message", [("SIGTERM", 143, "terminated"),
                                                          ("SIGINT", 130, "interrupted")])
def test_signal_mid_run_keeps_the_old_output_and_no_temporary(project, signal_name, status, message):
    root, _ = project
    output = root / "prices.csv"
    output.write_text("old prices\n")
    process = _start_pricing_from_a_pipe(root, output)
    process.send_signal(getattr(signal, signal_name))
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)
        pytest.fail(f"`pricer predict` was still running 60 s after {signal_name}:\n{process.stderr.read()[-3000:]}")
    assert process.returncode == status
    assert process.stderr.read().strip().splitlines()[-1] == f"pricer: {message}"
    assert output.read_text() == "old prices\n"
    assert sorted(path.name for path in root.iterdir()) == ["models", "prices.csv"]


def test_a_temporary_left_by_sigkill_is_recognisable_and_harmless(project):
    root, _ = project
    output = root / "prices.csv"
    output.write_text("old prices\n")
    process = _start_pricing_from_a_pipe(root, output)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    (stale,) = [path.name for path in root.iterdir() if path.name not in ("models", "prices.csv")]
    assert stale.startswith(".prices.csv.") and stale.endswith(".tmp.csv")  # hidden, named after -o
    assert output.read_text() == "old prices\n"
    assert main(["predict", "-m", "models/mlp", "-o", str(output), "a lamp"]) == 0  # the next run is not bothered
    assert csv_rows(output.read_text())[0]["row"] == "1"


def test_promote_without_registered_versions_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["promote", "resnet", "--version", "1"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no MLflow store at" in error and "Traceback" not in error
    assert not (tmp_path / "mlflow.db").exists()  # asking created no empty store


def test_promote_needs_exactly_one_of_exp_and_version(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["promote", "resnet"])
    assert raised.value.code == 2 and "one of the arguments --exp --version is required" in capsys.readouterr().err
