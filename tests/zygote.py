"""Stage commands forked from a preloaded interpreter: the end-to-end tests' ``python`` and ``pricer``.

A stage of the tiny test pipeline does a fraction of a second of work after 5-7 CPU-seconds of
imports (torch, MLflow's SQL store, pandas, scikit-learn), and the suite's ``dvc`` commands start
about a hundred of them on a 2-core machine. So the scratch projects' ``PATH`` begins with a
folder holding two small launchers, ``python`` and ``pricer`` (``install_launchers``). ``dvc``
runs a stage's ``cmd`` (``python stages/train.py mlp``) through it, as do the docs' blocks and
``dvc exp`` queue workers. The launcher hands its command, working directory, environment and
standard streams (the descriptors themselves, over a Unix socket) to the *zygote* of this test
process (``Zygote``: one interpreter that imported those libraries and pricer once, then waits),
which forks a process that runs it as a fresh interpreter would (``_run_command``) and reports
its exit; the launcher exits the same way, so ``dvc`` sees the stage's own status, and signals
sent to the launcher reach the stage. Everything else (``python -c``, ``python -m``, another
script, and any command whose environment sets what a library reads only when imported:
``PYTHON*``, OpenMP's and MKL's threads, Arrow's allocator) ``exec``s the real interpreter, as
when no zygote runs.

Where a forked command differs from a fresh interpreter: its libraries were imported before its
own first line (none of them prints or starts a thread on import: ``serve`` refuses to serve
otherwise), and ``hash()`` of a string is the same in every command forked from one zygote (the
random states are drawn anew: Python's by itself after a fork, numpy's global one here). The suite's own
``dvc repro`` of the shared pipeline (tests/e2e/conftest.py) and the CI's README commands run
real interpreters throughout.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

SOCKET_ENV = "PRICER_TEST_ZYGOTE"
# Read when a library is imported or first initialised, so a command must agree with the zygote's:
# Python's own settings, OpenMP's and MKL's thread pools, Arrow's allocator, torch's and CUDA's.
# (Not KMP_*: Intel's OpenMP runtime reads them, which torch's CPU wheel does not load; scikit-learn
# and joblib set two of them on import, as they do in the zygote.)
IMPORT_TIME_PREFIXES = ("PYTHON", "OMP_", "MKL_", "OPENBLAS_", "ARROW_", "TORCH_", "CUDA_", "LD_")
# What the stages, the `pricer` command and their libraries import: all of it once, in the zygote.
PRELOAD = ("numpy", "pandas", "pyarrow.parquet", "scipy.sparse", "sklearn.feature_extraction.text", "torch",
           "torch._dynamo", "torch.distributed", "torch.distributed.run", "mlflow", "mlflow.pyfunc",
           "mlflow.models", "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store",
           "pydantic", "yaml", "dvc.api")
MESSAGE_BYTES = 1 << 20
LISTENING = "listening"  # the zygote's first log line once launchers can connect
LAUNCHED_COMMANDS = ("python", "pricer")


def wanted_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in environ.items() if key.startswith(IMPORT_TIME_PREFIXES)}


# --- the launcher (`python` and `pricer` on the scratch projects' PATH): the standard library only


def forked_command(argv: Sequence[str]) -> list[str] | None:
    """What the zygote runs for this launcher command line, or None when the real interpreter
    must: ``python <dir>/stages/<name>.py ARGS`` (a stage script) and ``pricer ARGS``."""
    name, *args = argv
    if Path(name).name == "pricer":
        return ["pricer", *args]
    script = Path(args[0]) if args else None
    if script and script.suffix == ".py" and script.parent.name == "stages" and script.is_file():
        return args
    return None


def launch(argv: Sequence[str], real_python: str) -> None:
    """The launcher's body: the command forked from the zygote named in the environment, or the
    real interpreter exec'd in this process (no zygote, another command, a refusal)."""
    command = forked_command(argv)
    address = os.environ.get(SOCKET_ENV, "")
    if command is not None and address:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            connection.connect(address)
        except OSError:  # the zygote's test process has ended: run it the ordinary way
            connection.close()
        else:
            _forward(connection, command)  # exits
    # by absolute path: the interpreter finds its venv from it, and `pricer` is the venv's own script
    real = str(Path(real_python).with_name("pricer")) if Path(argv[0]).name == "pricer" else real_python
    os.execv(real, [real, *argv[1:]])


def _forward(connection: socket.socket, command: list[str]) -> None:
    request = {"argv": command, "cwd": os.getcwd(), "env": dict(os.environ)}
    try:
        socket.send_fds(connection, [json.dumps(request).encode()], [0, 1, 2])
        reply = json.loads(connection.recv(MESSAGE_BYTES) or b'{"refused": true}')
    except OSError:  # a closed standard stream cannot be passed on; the zygote went meanwhile
        reply = {"refused": True}
    if reply.get("refused"):
        connection.close()
        return

    def pass_on(received: int, frame: object) -> None:
        with contextlib.suppress(OSError):  # the command has just ended
            connection.send(json.dumps({"signal": received}).encode())

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(number, pass_on)
    message = connection.recv(MESSAGE_BYTES)
    if not message:
        print(f"zygote launcher: the zygote's handler of `{' '.join(command)}` ended without its exit status "
              f"(its log: the test's zygote.log)", file=sys.stderr)
        os._exit(1)
    end = json.loads(message)
    if "signal" in end:
        _die_of(end["signal"])
    os._exit(end["exit"])


def _die_of(number: int) -> None:
    """End this process by signal ``number``, as the command did: its parent sees the signal."""
    if number not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)
    os._exit(128 + number)  # a signal whose default is to be ignored


# --- the zygote


def serve(address: str, preload: Sequence[str] = ()) -> None:
    """Import ``preload`` (by default ``PRELOAD`` and all of pricer), then fork a handler per
    launcher that connects to ``address``, until this process's stdin (a pipe from its test
    process) closes."""
    import importlib
    import pkgutil

    try:  # the handlers wait on a command with a pidfd (Linux 5.3)
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError) as error:
        print(f"not serving: no pidfd here ({error}); the launchers run the real interpreter", file=sys.stderr)
        return
    environment = wanted_environment(os.environ)
    before = dict(os.environ)
    if not preload:
        import pricer

        preload = [*PRELOAD, *(module.name for module in pkgutil.walk_packages(pricer.__path__, "pricer.")
                               if not module.name.endswith(".__main__"))]  # `-m pricer.cli` runs on import
    for name in preload:
        importlib.import_module(name)
    if threading.active_count() != 1:
        raise SystemExit(f"zygote: the preload started threads {threading.enumerate()}: forking would copy them")
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fstat(2).st_size:  # the log (stdout and stderr), empty until now unless an import printed
        raise SystemExit("zygote: the preload printed the lines above: a forked command would not print them")
    # what the imports put in the environment (torch: KMP_*), as they would in a fresh interpreter
    set_on_import = {key: value for key, value in os.environ.items() if before.get(key) != value}
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    Path(address).unlink(missing_ok=True)  # left by an earlier zygote in this folder
    listener.bind(address)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    print(LISTENING, file=sys.stderr, flush=True)
    while True:
        readable, _, _ = select.select([listener, sys.stdin], [], [])
        if sys.stdin in readable:
            return  # the test process has closed the pipe (or ended)
        connection, _ = listener.accept()
        if os.fork() == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            listener.close()
            _handle(connection, environment, set_on_import)
        connection.close()


def _handle(connection: socket.socket, environment: dict[str, str], set_on_import: dict[str, str]) -> None:
    """One launcher's command: forked, its exit reported, signals passed on; if the launcher
    goes (killed), the command's process group is killed with it."""
    try:
        message, descriptors, _, _ = socket.recv_fds(connection, MESSAGE_BYTES, 3)
        request = json.loads(message)
        differing = sorted(key for key in wanted_environment(request["env"]).keys() | environment.keys()
                           if request["env"].get(key) != environment.get(key))
        if differing or len(descriptors) != 3:
            for descriptor in descriptors:
                os.close(descriptor)
            print(f"refused {request['argv']} in {request['cwd']}: its {differing} differ", file=sys.stderr, flush=True)
            connection.send(json.dumps({"refused": True}).encode())
            os._exit(0)
        print(f"forked {request['argv']} in {request['cwd']}", file=sys.stderr, flush=True)
        pid = os.fork()
        if pid == 0:
            connection.close()
            _run_command(request["argv"], request["cwd"], set_on_import | request["env"], descriptors)
        for descriptor in descriptors:
            os.close(descriptor)
        connection.send(json.dumps({"pid": pid}).encode())
        exited = os.pidfd_open(pid)
        while True:
            readable, _, _ = select.select([connection, exited], [], [])
            if exited in readable:
                _, status, usage = os.wait4(pid, 0)
                end = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"exit": os.WEXITSTATUS(status)}
                connection.send(json.dumps(end).encode())
                print(f"ended {request['argv']}: {end}, {usage.ru_utime + usage.ru_stime:.2f} CPU-s", file=sys.stderr,
                      flush=True)
                os._exit(0)
            message = connection.recv(MESSAGE_BYTES)
            if not message:  # the launcher is gone (killed): so is its command
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os._exit(0)
            os.kill(pid, json.loads(message)["signal"])
    except BaseException:
        traceback.print_exc()
        os._exit(1)


def _run_command(argv: list[str], cwd: str, env: dict[str, str], descriptors: list[int]) -> None:
    """In the forked process: become ``argv`` started in ``cwd`` with ``env`` and the launcher's
    standard streams, run it, and exit as the interpreter would."""
    os.setsid()  # its own process group, as a launched command's children expect to share
    for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD):
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, descriptor in enumerate(descriptors):
        os.dup2(descriptor, target)
        os.close(descriptor)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    import numpy

    numpy.random.seed()  # a fresh interpreter's global numpy state is drawn anew
    status = 0
    try:
        if argv[0] == "pricer":
            sys.argv = argv
            sys.path[0] = os.path.dirname(sys.executable)  # a console script's
            from pricer.cli import main

            status = main()
        else:
            _run_script(argv)
    except SystemExit as stage_exit:
        status = exit_status(stage_exit)
    except KeyboardInterrupt:
        status = -signal.SIGINT
    except BaseException as error:
        trace = error.__traceback__
        while trace is not None and trace.tb_frame.f_code.co_filename == __file__:
            trace = trace.tb_next  # from the command's own first frame, as the interpreter prints it
        sys.excepthook(type(error), error.with_traceback(trace), trace)
        status = 1
    _exit_as_interpreter(status)


def exit_status(stage_exit: SystemExit) -> int:
    """The status ``sys.exit(code)`` ends an interpreter with; a message (``sys.exit("...")``) is
    printed to stderr first, as the interpreter prints it."""
    code = stage_exit.code
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def _run_script(argv: list[str]) -> None:
    """``argv[0]`` run as ``__main__``, set up as `python <script>` sets it up (Python 3.9+: an
    absolute ``__file__`` and ``sys.path[0]``, ``sys.argv[0]`` as given)."""
    import builtins
    import importlib.machinery
    import types

    path = os.path.abspath(argv[0])
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=path, __builtins__=builtins, __cached__=None,
                         __loader__=importlib.machinery.SourceFileLoader("__main__", path))
    sys.modules["__main__"] = main
    sys.argv = list(argv)
    sys.path[0] = os.path.dirname(path)
    with open(path, "rb") as source:
        code = compile(source.read(), path, "exec")
    exec(code, main.__dict__)


def _exit_as_interpreter(status: int) -> None:
    threading._shutdown()  # noqa: SLF001 (what interpreter shutdown does first: wait for non-daemon threads)
    atexit._run_exitfuncs()  # noqa: SLF001 (then the atexit callbacks)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed by the command
            stream.flush()
    if status < 0:
        _die_of(-status)
    os._exit(status & 0xFF)


# --- the test side


LAUNCHER = """#!{python} -IS
import sys
sys.path.insert(0, {tests!r})
import zygote
zygote.launch(sys.argv, {python!r})
"""


def install_launchers(directory: Path, python: str = sys.executable) -> Path:
    """``python`` and ``pricer`` launchers in ``directory`` (put it first on a command's PATH)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in LAUNCHED_COMMANDS:
        path = directory / name
        path.write_text(LAUNCHER.format(python=python, tests=str(Path(__file__).parent)))
        path.chmod(0o755)
    return directory


class Zygote:
    """The zygote of this test process, started (not waited for: until it listens, the launchers
    run the real interpreter) with ``environment``, the one the commands it forks run with, as far
    as ``IMPORT_TIME_PREFIXES`` go. Its log (``zygote.log`` in ``directory``) lists what it forked
    and refused."""

    def __init__(self, directory: Path, environment: Mapping[str, str], preload: Sequence[str] = ()) -> None:
        self.address = str(directory / "zygote.sock")
        self.log = directory / "zygote.log"
        self.launchers = install_launchers(directory / "bin")
        with open(self.log, "w") as log:
            self.process = subprocess.Popen([sys.executable, __file__, self.address, *preload], stdin=subprocess.PIPE,
                                            stdout=log, stderr=log, env=dict(environment),
                                            cwd=directory, start_new_session=True)

    def forking(self, environment: Mapping[str, str]) -> dict[str, str]:
        """``environment`` with the launchers (installed in this zygote's folder) first on its PATH
        and this zygote's address: its ``python stages/...`` and ``pricer`` fork from here."""
        return {**environment, "PATH": f"{self.launchers}{os.pathsep}{environment.get('PATH', '')}",
                SOCKET_ENV: self.address}

    def wait_listening(self, timeout: float = 300) -> None:
        """Until launchers can connect (at most ``timeout`` seconds, then fail with the log)."""
        deadline = time.monotonic() + timeout
        while LISTENING not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the zygote is not listening after {timeout:g} s (exit {self.process.poll()}):\n"
                                   f"{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def close(self) -> None:
        """Stop it (the commands it forked run on); fail if it had ended on its own, with its log."""
        ended_early = self.process.poll()
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except Exception:
            self.process.kill()
            self.process.wait()
        if ended_early:
            raise RuntimeError(f"the zygote ended early ({ended_early}):\n{self.log.read_text()[-3000:]}")


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
