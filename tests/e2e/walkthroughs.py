"""The docs' command blocks, as a new user runs them: read from a page, run verbatim and in order.

A block that cannot run here says so in the line right above it, in an HTML comment that the
reader does not see: ``<!-- docs-test: skip (why) -->`` (a GPU, the network, a cloud account, a
server that runs until Ctrl-C; each such block names its local stand-in in the text).
``<!-- docs-test: setup -->`` marks a set-up block the scratch project has already done (the clone
and the virtual environment).

The README and docs/comparing.md begin alike: the first command's ``dvc repro``, the baseline
commit and two experiments, ``half-lr`` and ``mlp-fast`` (the README's experiments block opens with
them; comparing.md's first two blocks are exactly them). Those commands (``shared_start``) run once
per test run, command by command (``start_experiments``: the ``experiments`` fixture in
conftest.py), and each walk goes on from a copy of that project with the rest of its page
(``readme_after_shared_start``, ``comparing_after_shared_start``, which fail if the pages stop
beginning alike). The tests of a single experiment read that project too.

``follow_comparing`` walks the rest of docs/comparing.md once per test run (``comparing`` in
conftest.py), and the tests of the page, of queued sweeps and of parallel writers to one MLflow
store all read what that walk left: the page's queue block *is* a sweep run by two queue workers,
so the suite runs it once instead of three times.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from .conftest import REPO_ROOT, Project, copy_project

BLOCK = re.compile(r"(?:<!--\s*docs-test:\s*(?P<marker>[^>]*?)\s*-->\s*\n)?```bash\n(?P<body>.*?)```", re.S)
COMMENT = re.compile(r"(^|\s+)#.*$")
BLOCK_TIMEOUT_S = 900

README = REPO_ROOT / "README.md"
COMPARING = REPO_ROOT / "docs" / "comparing.md"
# The README's first two blocks are its set-up and its test command: CI runs them as they are.
README_OPENING_BLOCKS = 2
# The README's experiments block opens with the baseline commit and two `dvc exp run`: the shared start.
README_SHARED_COMMANDS = 3
# What follow_comparing leaves beside the walked project: a copy taken right after the queue block
# (the sweep: main and the queued experiments, before the page applies one), what a concurrent
# reader of the MLflow store saw while the queue ran, and the names of the queued experiments.
# the queue's status and each queued experiment's log (`dvc queue status`, `dvc queue logs`: the
# copy has no .dvc/tmp, where the queue keeps them).
SWEPT, READER_REPORT, QUEUED, QUEUE_STATUS = "swept", "reader.json", "queued.json", "queue-status.txt"
QUEUE_LOGS = "queue-logs"
QUEUE_RUN = "dvc exp run --run-all"  # the block that runs the queue (around which the reader polls)

# A plain reader of the store (sqlite's default 5 s busy wait) polling while the queue workers write:
# once a second, a hundred reads or more over the queue's minutes (a read of the store's runs takes
# about 25 ms of CPU: polling 20 times a second took 70 CPU-seconds from the suite's 2 cores).
READER = """
import json, pathlib, sys, time
from mlflow.tracking import MlflowClient

root, stop = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
reads, errors, most = 0, [], 0
while not stop.exists():
    try:
        experiment = client.get_experiment_by_name("pricer")
        if experiment is not None:
            most = max(most, len(client.search_runs([experiment.experiment_id], max_results=1000)))
        reads += 1
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}"[:300])
    time.sleep(1)
print(json.dumps({"reads": reads, "errors": errors, "most_runs": most}))
"""


def command_blocks(page: Path) -> list[tuple[str, str]]:
    """(marker, body) of every bash block of ``page``, in order."""
    return [(match["marker"] or "", match["body"]) for match in BLOCK.finditer(page.read_text(encoding="utf-8"))]


def runnable(blocks: list[tuple[str, str]]) -> list[str]:
    return [body for marker, body in blocks if not marker.startswith(("skip", "setup"))]


def commands(body: str) -> list[str]:
    """A block's commands: its lines without their comments, blank lines left out."""
    return [line for line in (COMMENT.sub("", line).strip() for line in body.splitlines()) if line]


def readme_blocks() -> list[str]:
    """The README's runnable blocks after its set-up and test commands."""
    return runnable(command_blocks(README)[README_OPENING_BLOCKS:])


def shared_start() -> list[str]:
    """The commands both walks begin with: the README's first command's `dvc repro` (up to date in
    the scratch project: its tiny params are reproduced already) and the opening commands of its
    experiments block."""
    return ["dvc repro", *commands(readme_blocks()[0])[:README_SHARED_COMMANDS]]


def readme_after_shared_start() -> list[str]:
    """The README's blocks from the first command after ``shared_start``."""
    first, *rest = readme_blocks()
    lines, seen = first.splitlines(keepends=True), 0
    for number, line in enumerate(lines):
        seen += bool(commands(line))
        if seen == README_SHARED_COMMANDS:
            return ["".join(lines[number + 1:]), *rest]
    raise AssertionError(f"README.md's experiments block has fewer than {README_SHARED_COMMANDS} commands:\n{first}")


def comparing_after_shared_start() -> tuple[int, list[str]]:
    """docs/comparing.md's runnable blocks after those that are ``shared_start``, and the number of
    the first of them. Fails if the page no longer begins with exactly those commands."""
    blocks, start, taken, used = runnable(command_blocks(COMPARING)), shared_start(), [], 0
    while used < len(blocks) and len(taken) < len(start):
        taken += commands(blocks[used])
        used += 1
    assert taken == start, (f"{COMPARING.name} no longer begins with the README's commands {start} (its first "
                            f"blocks: {taken}); the two walks share them (walkthroughs.py): share what is shared")
    return used + 1, blocks[used:]


def run_block(project: Project, page: str, number: int, body: str) -> str:
    """One block in ``bash -euo pipefail`` (output to files: a `dvc queue` worker a block starts
    outlives it), at most ``BLOCK_TIMEOUT_S``; its stdout and stderr. Fails naming the block."""
    done = project.run("bash", "-euo", "pipefail", "-c", body, check=False, timeout=BLOCK_TIMEOUT_S)
    assert done.returncode == 0, (f"{page} block {number} failed ({done.returncode}):\n{body}\n--- stdout:\n"
                                  f"{done.stdout[-3000:]}\n--- stderr:\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def run_page(project: Project, page: str, blocks: list[str]) -> str:
    """Every block in order; the queue workers stopped at the end. Their output."""
    try:
        return "".join(run_block(project, page, number, body) for number, body in enumerate(blocks, start=1))
    finally:
        project.stop_queue_workers()


def experiment_names(project: Project) -> set[str]:
    return set(project.dvc("exp", "ls", "--name-only").stdout.split())


def start_experiments(pipeline: Project, directory: Path) -> str:
    """``shared_start`` in a copy of ``pipeline`` (reproduced, not committed) at ``directory /
    "pricer"``, each command on its own; a JSON list of [command, its stdout + stderr]."""
    project = copy_project(pipeline, directory / "pricer")
    return json.dumps([[command, run_block(project, "README.md", number, command)]
                       for number, command in enumerate(shared_start(), start=1)])


def follow_comparing(experiments: Project, directory: Path) -> str:
    """docs/comparing.md's blocks after ``shared_start`` in a copy of ``experiments`` (the project
    that ran it). Around the queue block a reader polls the MLflow store; after it, the project is
    copied to ``directory / SWEPT``. The blocks' output."""
    project = copy_project(experiments, directory / "pricer")
    output = []
    first, blocks = comparing_after_shared_start()
    try:
        for number, body in enumerate(blocks, start=first):
            if QUEUE_RUN not in body:
                output.append(run_block(project, COMPARING.name, number, body))
                continue
            before = experiment_names(project)
            stop = directory / "stop-reading"
            reader = project.start(sys.executable, "-c", READER, str(project.root), str(stop),
                                   log=directory / "reader.log")
            try:
                output.append(run_block(project, COMPARING.name, number, body))
            finally:
                stop.touch()
                reader.wait(timeout=60)
            last_line = (directory / "reader.log").read_text().strip().splitlines()[-1]
            (directory / READER_REPORT).write_text(last_line)
            queued = sorted(experiment_names(project) - before)
            (directory / QUEUED).write_text(json.dumps(queued))
            (directory / QUEUE_STATUS).write_text(project.dvc("queue", "status").stdout)
            (directory / QUEUE_LOGS).mkdir()
            for name in queued:
                (directory / QUEUE_LOGS / f"{name}.log").write_text(project.dvc("queue", "logs", name).stdout)
            project.stop_queue_workers()  # idle now: the copy must not take a worker's files mid-write
            shutil.rmtree(directory / SWEPT, ignore_errors=True)
            copy_project(project, directory / SWEPT)
    finally:
        project.stop_queue_workers()
    return "".join(output)
