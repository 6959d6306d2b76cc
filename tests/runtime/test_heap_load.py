"""A file load keeps what its processes hold out of full garbage collections
(`runtime.heap.freeze_once`): the storing process when the load starts
(`intake.load.load_file`), and each mapping process when it starts (the initializer of
`intake.parallel.MappingPool`). Each is seen in a process of its own, which nothing had
frozen before: in this one any earlier test may have."""

from __future__ import annotations

import gc
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from accord.config import load_project
from accord.intake.parallel import MappingPool
from tests.factories import billing_row, write_jsonl

# what a started Accord process holds is some hundreds of thousands of objects
# (runtime/heap.py); an empty interpreter, a few tens of thousands
HELD = 10_000

LOAD = """
import gc, sys
from pathlib import Path
from accord.config import load_project
from accord.intake.load import load_file
from accord.store.engine import make_engine
from accord.store.migrate import upgrade

root, store, data = map(Path, sys.argv[1:4])
engine = make_engine(f"sqlite:///{store}")
upgrade(engine)
project = load_project(root)
before = gc.get_freeze_count()
report = load_file(engine, project, "billing", data, actor="test", workers=0)
print(before, gc.get_freeze_count(), report.new)
"""


def test_a_file_load_freezes_what_the_storing_process_holds(
    demo_project_dir: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "billing.jsonl", [billing_row(f"B{i}") for i in range(5)])
    environ = {k: v for k, v in os.environ.items() if k != "ACCORD_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(demo_project_dir), str(tmp_path / "s.sqlite3"), data],
        capture_output=True,
        text=True,
        timeout=300,
        env=environ,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    before, after, new = map(int, done.stdout.split())
    assert (before, new) == (0, 5)  # nothing frozen until the load, which stored the file
    assert after > HELD


def test_a_mapping_process_freezes_what_it_holds_once_started(demo_project_dir: Path) -> None:
    project = load_project(demo_project_dir)
    mapping, system = project.mapping("billing"), project.config.systems["billing"]
    with MappingPool(mapping, system, 1) as pool:
        # a function of our own, run by the pool's mapping process after its start
        frozen = pool._executor.submit(gc.get_freeze_count).result(timeout=300)
    assert frozen > HELD
    # a process spawned the same way but not started as a mapping process: none
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as bare:
        assert bare.submit(gc.get_freeze_count).result(timeout=300) == 0
