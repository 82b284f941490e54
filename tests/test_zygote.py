"""The end-to-end tests' stage-command zygote (tests/zygote.py): a command forked from it is, to
whoever started it, the same command run by a new interpreter: output, exit, signals, death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from zygote import SOCKET_ENV, Zygote

PROBE = textwrap.dedent('''\
    import atexit, json, os, signal, sys, time
    mode = sys.argv[1]
    if mode == "report":
        atexit.register(lambda: print("atexit ran", file=sys.stderr))
        print(json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "probe": os.environ.get("PROBE"),
                          "path0": sys.path[0], "file": __file__, "name": __name__, "stdin": sys.stdin.read()}))
        print("to stderr", file=sys.stderr)
        sys.exit(3)
    if mode == "message":
        sys.exit("a message instead of a status")
    if mode == "raise":
        raise ValueError("a failure")
    if mode == "wait":
        if sys.argv[2] == "handled":
            signal.signal(signal.SIGTERM, lambda *_: (print("stopping on SIGTERM", flush=True), sys.exit(7)))
        open(sys.argv[3], "w").write(str(os.getpid()))
        time.sleep(60)
    ''')


# the environment of the zygote and the commands (without OpenMP settings: one test adds one)
BASE = {key: value for key, value in os.environ.items() if not key.startswith("OMP_")}


@pytest.fixture(scope="module")
def zygote(tmp_path_factory) -> Iterator[Zygote]:
    # a zygote that preloads one small module: what is under test is the forking, not the preload
    started = Zygote(tmp_path_factory.mktemp("zygote"), BASE, preload=("json",))
    started.wait_listening(timeout=60)
    yield started
    started.close()


@pytest.fixture
def project(tmp_path) -> Path:
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "probe.py").write_text(PROBE)
    return tmp_path


def run(project: Path, env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(["python", "stages/probe.py", *args], cwd=project, env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


def forked_count(zygote: Zygote) -> int:
    return zygote.log.read_text().count("forked ['stages/probe.py'")


def test_a_forked_stage_script_is_indistinguishable_from_a_new_interpreter(zygote, project):
    env = zygote.forking(BASE | {"PROBE": "set"})
    before = forked_count(zygote)
    for args in (["report"], ["message"], ["raise"]):
        forked = run(project, env, *args, stdin="standard input")
        fresh = run(project, env | {SOCKET_ENV: ""}, *args, stdin="standard input")
        assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert forked_count(zygote) == before + 3  # and the fresh runs were not forked
    report = run(project, env, "report", stdin="standard input")
    assert report.returncode == 3 and report.stderr == "to stderr\natexit ran\n"
    assert '"argv": ["stages/probe.py", "report"]' in report.stdout and '"stdin": "standard input"' in report.stdout


def test_the_pricer_command_forked_is_the_console_script(zygote, project):
    env = zygote.forking(BASE)
    forked, fresh = (subprocess.run(["pricer", "no-such-command"], cwd=project, env=environment, capture_output=True,
                                    text=True, timeout=120) for environment in (env, env | {SOCKET_ENV: ""}))
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert forked.returncode == 2 and "usage: pricer" in forked.stderr
    assert "forked ['pricer', 'no-such-command']" in zygote.log.read_text()


def test_a_command_that_sets_what_libraries_read_on_import_runs_in_a_new_interpreter(zygote, project):
    env = zygote.forking(BASE) | {"OMP_NUM_THREADS": "1"}
    before = forked_count(zygote)
    assert run(project, env, "report").returncode == 3
    assert forked_count(zygote) == before
    log = zygote.log.read_text()
    assert "refused ['stages/probe.py', 'report']" in log and "OMP_NUM_THREADS" in log


def test_other_python_commands_are_the_real_interpreter(zygote, project):
    env = zygote.forking(BASE)
    done = subprocess.run(["python", "-c", "import sys; print(sys.executable, sys.prefix)"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == [sys.executable, sys.prefix]
    missing = subprocess.run(["python", "stages/missing.py"], cwd=project, env=env, capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 2 and "can't open file" in missing.stderr


def wait_for_pid(path: Path) -> int:
    deadline = time.monotonic() + 30
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"the probe never wrote {path}"
        time.sleep(0.05)
    return int(path.read_text())


def gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("handled", [True, False])
def test_a_signal_to_the_launcher_reaches_the_command_and_its_end_is_the_launchers(zygote, project, handled):
    pid_file = project / "pid"
    launcher = subprocess.Popen(["python", "stages/probe.py", "wait", "handled" if handled else "default", pid_file],
                                cwd=project, env=zygote.forking(BASE), stdout=subprocess.PIPE, text=True)
    command = wait_for_pid(pid_file)
    assert command != launcher.pid  # forked from the zygote
    launcher.send_signal(signal.SIGTERM)
    stdout, _ = launcher.communicate(timeout=30)
    if handled:
        assert (launcher.returncode, stdout) == (7, "stopping on SIGTERM\n")
    else:
        assert launcher.returncode == -signal.SIGTERM
    assert gone(command)


def test_a_killed_launcher_takes_its_command_with_it(zygote, project):
    pid_file = project / "pid"
    launcher = subprocess.Popen(["python", "stages/probe.py", "wait", "default", pid_file], cwd=project,
                                env=zygote.forking(BASE))
    command = wait_for_pid(pid_file)
    launcher.kill()
    launcher.wait(timeout=30)
    assert gone(command), "the command outlived its SIGKILLed launcher"


def test_a_preload_that_prints_is_refused_and_commands_run_the_real_interpreter(tmp_path, project):
    printing = Zygote(tmp_path / "printing", BASE, preload=("this",))  # the Zen of Python, printed on import
    try:
        assert printing.process.wait(timeout=60) == 1
        assert run(project, printing.forking(BASE), "report").returncode == 3  # not forked: nobody listens
    finally:
        with pytest.raises(RuntimeError, match="the preload printed"):
            printing.close()
