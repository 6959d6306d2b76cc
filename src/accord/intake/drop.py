"""The file-drop channel: a folder per system that another system writes files into.

A scan takes each file in the folder whose name fits the pattern, oldest first, and
loads it on its own (one load per file, channel `drop`) through `load.load_file`, the
same path as `accord load`. The folder's life cycle:

    drops/erp/               files arrive here (written as `x.csv.part`, then renamed)
    drops/erp/processing/    a file being loaded, in a folder of its own claim
    drops/erp/done/          loaded; `<name>.report.json` beside it
    drops/erp/failed/        unusable as a whole; the report says why and what to do

Files still being written are left alone: dotfiles, names ending `.part` or `.tmp`, and
files changed within the last `settle` seconds. The safe convention for a writer is
"write then rename": write `orders.csv.part`, rename it to `orders.csv` when complete.

Claiming is safe between workers: a file is locked (`flock`, released by the kernel when
its holder dies) before it is renamed into `processing/`, and stays locked until it has
left. A file found in `processing/` without a lock was left by a worker that stopped
mid-load; the next scan loads it again, and since loading is idempotent (records
already stored count as unchanged) it ends as an undisturbed load would. An error that is
not the file's fault (the database is down) leaves the file in `processing/` for the next
scan, rather than failing it.

Nothing is overwritten: a name already in `done/` or `failed/` gets a UTC timestamp
(and a counter) before its extension. A file with the same bytes as one done before is
loaded again (every record unchanged) and its report says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from accord.config.intake import DropConfig
from accord.config.loader import Project
from accord.config.models import FileFormat
from accord.errors import AccordError, InputRejected, NotFound
from accord.govern.permissions import Actor, Permission, require
from accord.intake.load import LoadReport, load_file
from accord.intake.readers import keep
from accord.store import quarantine as quarantine_store

PROCESSING, DONE, FAILED = "processing", "done", "failed"
REPORT_SUFFIX = ".report.json"
CONTENT_INDEX = ".content"  # in done/: one empty-ish file per sha256 of a file done
IGNORED_SUFFIXES = (".part", ".tmp")
MAX_NAME_BYTES = 255 - len(REPORT_SUFFIX)  # a name and its report's name must both fit
_DEFAULT_PATTERNS = {
    "csv": ("*.csv", "*.csv.gz", "*.tsv", "*.tsv.gz"),
    "jsonl": ("*.jsonl", "*.jsonl.gz", "*.ndjson", "*.ndjson.gz"),
}

DropProgress = Callable[[str, int, int], None]  # (file name, bytes read, total bytes)


@dataclass
class DropResult:
    """What became of one dropped file."""

    system: str
    name: str  # as dropped
    status: str  # done or failed
    path: Path  # where the file is now (in done/ or failed/)
    report_path: Path
    load: LoadReport | None = None  # None when the file was refused before a load began
    error: str | None = None
    next_step: str | None = None
    same_content_as: str | None = None
    resumed: bool = False  # found in processing/, left by a worker that stopped
    sha256: str | None = None
    size: int = 0

    def as_report(self, folder: Path) -> dict[str, Any]:
        """The report written beside the file: plain JSON, names made printable."""
        load = self.load
        return {
            "file": _printable(self.name),
            "system": self.system,
            "status": self.status,
            "path": _printable(str(self.path.relative_to(folder))),
            "bytes": self.size,
            "sha256": self.sha256,
            "load_id": None if load is None else load.load_id,
            "counts": None if load is None else load.counts(),
            "quarantined": 0 if load is None else load.quarantined,
            "quarantine_reasons": {} if load is None else load.quarantine_reasons,
            "same_content_as": self.same_content_as,
            "resumed": self.resumed,
            "error": self.error,
            "next": self.next_step,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }


def drop_settings(project: Project, system: str) -> tuple[Path, DropConfig]:
    """The system's drop folder (resolved against the project folder) and its block;
    raises NotFound when the system has none."""
    project.mapping(system)
    config = project.config.systems[system].intake.drop
    if config is None:
        raise NotFound(
            f"system {system!r} has no drop folder",
            hint=f"add `intake: {{drop: {{folder: drops/{system}}}}}` under systems.{system} "
            "in accord.yaml (see docs/intake-drop.md)",
        )
    return project.root / config.folder, config


def drop_systems(project: Project) -> list[str]:
    """The systems with a drop folder, in name order."""
    return sorted(n for n, s in project.config.systems.items() if s.intake.drop is not None)


def patterns(config: DropConfig, fmt: FileFormat) -> tuple[str, ...]:
    """The file-name patterns a folder takes: the block's own, or by the mapping's format."""
    if config.pattern is not None:
        given = [config.pattern] if isinstance(config.pattern, str) else config.pattern
        return tuple(p.lower() for p in given)
    if fmt.type is not None:
        return _DEFAULT_PATTERNS[fmt.type]
    return _DEFAULT_PATTERNS["csv"] + _DEFAULT_PATTERNS["jsonl"]


def wanted(name: str, names: tuple[str, ...]) -> bool:
    """Whether a file of this name is taken: it fits a pattern (case-insensitive) and is
    not, by the write-then-rename convention, still being written."""
    lower = name.lower()
    if name.startswith(".") or lower.endswith(IGNORED_SUFFIXES):
        return False
    return any(fnmatch.fnmatchcase(lower, p) for p in names)


def scan_once(
    engine: Engine,
    project: Project,
    system: str,
    *,
    actor: str,
    progress: DropProgress | None = None,
    batch_size: int = 1000,
    should_stop: Callable[[], bool] | None = None,
) -> list[DropResult]:
    """Load every file waiting in `system`'s drop folder, one load per file, and move
    each to done/ or failed/ with its report; see the module's text. Files left in
    processing/ by a worker that stopped come first, then new files, oldest first.
    When `should_stop()` turns true, the scan ends after the file in hand; the files
    not taken wait for the next scan.

    Re-entrant: any number of workers may scan one folder at once; each file is taken by
    one. An error other than the file being unusable (InputRejected) is raised, and the
    file waits in processing/ for the next scan."""
    folder, config = drop_settings(project, system)
    fmt = project.mapping(system).config.format
    _prepare(folder)
    names = patterns(config, fmt)
    results: list[DropResult] = []
    for path, resumed in _candidates(folder, names, config.settle.total_seconds()):
        if should_stop is not None and should_stop():
            break
        with _claimed(folder, path, resumed=resumed) as claim:
            if claim is None:
                continue  # another worker has it, or had it
            result = _process(
                engine,
                project,
                system,
                folder,
                claim,
                actor=actor,
                progress=progress,
                batch_size=batch_size,
            )
            if result is not None:
                results.append(result)
    return results


@dataclass
class _Claim:
    path: Path  # in processing/<claim>/
    resumed: bool
    regular: bool  # False for a symlink, a FIFO, a device: never opened, failed at once
    size: int = 0
    sha256: str | None = None


_CLAIM_ATTEMPTS = 5


def _prepare(folder: Path) -> None:
    if not folder.is_dir():
        raise NotFound(
            f"the drop folder {folder} does not exist",
            hint="create it, or fix `intake.drop.folder` of the system in accord.yaml",
        )
    for sub in (PROCESSING, DONE, FAILED, f"{DONE}/{CONTENT_INDEX}"):
        target = folder / sub
        if os.path.lexists(target) and not target.is_dir():
            raise AccordError(
                f"{target} is in the way: it should be a folder",
                hint="move it out of the drop folder; Accord keeps its own folders there",
            )
        target.mkdir(exist_ok=True)


def _candidates(folder: Path, names: tuple[str, ...], settle: float) -> Iterator[tuple[Path, bool]]:
    """Interrupted files first (processing/<claim>/<name>), then new ones, oldest first.
    A name that fits is taken whatever it is, so a symlink or a FIFO is failed with a
    report rather than left unexplained; only regular files are ever opened."""
    for entry in _entries_by_age(folder / PROCESSING):
        if entry.is_dir(follow_symlinks=False):
            inside = _entries_by_age(Path(entry.path))
            yield from ((Path(e.path), True) for e in inside)
            if not inside:
                with contextlib.suppress(OSError):
                    os.rmdir(entry.path)  # an empty claim left by a stopped worker
    cutoff = time.time() - settle
    for entry in _entries_by_age(folder):
        if entry.is_dir(follow_symlinks=False) or not wanted(entry.name, names):
            continue
        try:
            changed = entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        if changed <= cutoff:  # else changed a moment ago: probably still being written
            yield Path(entry.path), False


def _entries_by_age(folder: Path) -> list[os.DirEntry[str]]:
    def age(entry: os.DirEntry[str]) -> tuple[int, str]:
        try:
            return entry.stat(follow_symlinks=False).st_mtime_ns, entry.name
        except FileNotFoundError:
            return 0, entry.name

    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=age)
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def _claimed(folder: Path, path: Path, *, resumed: bool) -> Iterator[_Claim | None]:
    """Take `path` for this worker: lock it, then (if new) rename it into a claim folder
    of its own under processing/. Yields None when another worker has it. The lock is
    held until the file has been moved on."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        yield None
        return
    if not stat.S_ISREG(info.st_mode):
        moved = _into_claim(folder, path)  # a rename: of two workers, one gets it
        yield None if moved is None else _Claim(moved, resumed, regular=False)
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, OSError):
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None  # being loaded by another worker
            return
        opened = os.fstat(fd)
        try:
            now = path.lstat()
        except FileNotFoundError:
            yield None  # moved on by the worker that held it before us
            return
        if (now.st_ino, now.st_dev) != (opened.st_ino, opened.st_dev):
            yield None
            return
        claimed = path if resumed else _into_claim(folder, path)
        yield None if claimed is None else _Claim(claimed, resumed, True, size=opened.st_size)
    finally:
        os.close(fd)  # releases the lock


def _into_claim(folder: Path, path: Path) -> Path | None:
    """Rename `path` into a new claim folder; None when another worker took it first.

    Another worker's scan tidies away empty claim folders, and may do so between our
    mkdir and rename: the rename then fails although the file is still there. That is
    not "taken": try again with a new claim folder (found by a race under test)."""
    for _ in range(_CLAIM_ATTEMPTS):
        claim = folder / PROCESSING / uuid.uuid4().hex[:16]
        claim.mkdir()
        target = claim / path.name
        try:
            os.rename(path, target)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                claim.rmdir()
            if not os.path.lexists(path):
                return None  # taken by another worker
            continue  # our claim folder was tidied away under us
        return target
    raise AccordError(
        f"could not move {path.name} into {folder / PROCESSING}: its claim folders kept vanishing",
        hint="something other than Accord removes folders under processing/; stop it, scan again",
    )


def _process(
    engine: Engine,
    project: Project,
    system: str,
    folder: Path,
    claim: _Claim,
    *,
    actor: str,
    progress: DropProgress | None,
    batch_size: int,
) -> DropResult | None:
    name = claim.path.name
    started: list[LoadReport] = []
    failure: InputRejected | None = _refusal(claim)
    if failure is None:
        claim.sha256 = _sha256(claim.path)

        def on_progress(done: int, total: int) -> None:
            if progress is not None:
                progress(name, done, total)

        on_progress(0, claim.size)
        try:
            load_file(
                engine,
                project,
                system,
                claim.path,
                actor=actor,
                batch_size=batch_size,
                channel="drop",
                on_start=started.append,
                progress=on_progress,
            )
        except InputRejected as exc:
            failure = exc
        # anything else (the store is down, the process is stopping) is raised with the
        # file left in processing/: it is not the file's fault, the next scan retries
    load = started[0] if started else None
    outcome = DONE if failure is None else FAILED
    target = _move_unique(claim.path, folder / outcome, name)
    with contextlib.suppress(OSError):
        claim.path.parent.rmdir()
    if target is None:
        return None  # a symlink or FIFO another worker moved first
    result = DropResult(
        system,
        name,
        outcome,
        target,
        target.with_name(target.name + REPORT_SUFFIX),
        load,
        resumed=claim.resumed,
        sha256=claim.sha256,
        size=claim.size,
    )
    if failure is not None:
        result.error = failure.message
        result.next_step = _failed_next_step(failure, load)
    else:
        assert claim.sha256 is not None  # noqa: S101  (hashed above)
        result.same_content_as = _remember_content(folder, claim.sha256, target)
        result.next_step = _done_next_step(result, project.root)
    _write_report(result.report_path, result.as_report(folder))
    return result


def _refusal(claim: _Claim) -> InputRejected | None:
    name = claim.path.name
    if not claim.regular:
        return InputRejected(
            f"{_printable(name)} is not a regular file (a symlink, a FIFO or a device)",
            hint="drop the file itself: links are not followed",
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return InputRejected(
            f"the file name {_printable(name)!r} is not valid UTF-8",
            hint="rename the file with a UTF-8 name and drop it again",
        )
    return None


def _failed_next_step(failure: InputRejected, load: LoadReport | None) -> str:
    step = failure.hint or "fix the file, then drop it again"
    if load is not None and load.read:
        step += (
            f"; the {load.read:,} records read before the problem were kept (load "
            f"{load.load_id}), so dropping the fixed file again loads only what changed"
        )
    return step


def _done_next_step(result: DropResult, project_root: Path) -> str | None:
    notes: list[str] = []
    load = result.load
    if result.same_content_as is not None:
        notes.append(
            f"the same bytes as {result.same_content_as}, done before: loaded again, and "
            "records unchanged since were counted as unchanged"
        )
    if load is not None and load.quarantined:
        notes.append(
            f"{load.quarantined:,} record(s) quarantined: list them with "
            f"`accord drop quarantined {project_root} {load.load_id}`"
        )
    if load is not None and load.read == 0:
        notes.append("the file holds no records (a header only): check the export")
    return "; ".join(notes) or None


def _remember_content(folder: Path, sha256: str, target: Path) -> str | None:
    """Note that a file with these bytes is done; name the earlier one if there was."""
    marker = folder / DONE / CONTENT_INDEX / sha256
    here = _printable(str(target.relative_to(folder)))
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        try:
            return marker.read_text(encoding="utf-8").strip() or "an earlier file"
        except OSError:
            return "an earlier file"
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(here + "\n")
    return None


def _move_unique(source: Path, directory: Path, name: str) -> Path | None:
    """Move `source` into `directory` as `name`, or, when that is taken, with a UTC
    timestamp (and a counter) before its extension. Never overwrites: the new name is
    created with link(), which fails when it exists; rename() would replace it. None
    when `source` is gone (only a symlink or FIFO can be: a regular file is locked)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(10_000):
        target = directory / _numbered(name, attempt, stamp)
        try:
            os.link(source, target, follow_symlinks=False)
        except FileExistsError:
            continue
        except FileNotFoundError:
            return None
        except OSError:
            # a file system without hard links: check, then rename (the claim folder
            # already makes this worker the only one moving this file)
            if os.path.lexists(target):
                continue
            try:
                os.rename(source, target)
            except FileNotFoundError:
                return None
            return target
        try:
            os.unlink(source)
        except FileNotFoundError:
            os.unlink(target)  # another worker moved it on first
            return None
        return target
    raise AccordError(f"no free name for {_printable(name)} in {directory}")


def _numbered(name: str, attempt: int, stamp: str) -> str:
    """`name`, or `stem-<stamp>[-n]<ext>`; cut to fit the file system with its report."""
    stem, ext = _split_extension(name)
    tag = "" if attempt == 0 else f"-{stamp}" + (f"-{attempt}" if attempt > 1 else "")
    room = MAX_NAME_BYTES - len((tag + ext).encode("utf-8", "surrogateescape"))
    encoded = stem.encode("utf-8", "surrogateescape")
    if len(encoded) > room:
        stem = encoded[:room].decode("utf-8", "ignore")
    return stem + tag + ext


def _split_extension(name: str) -> tuple[str, str]:
    """`orders.csv.gz` -> (`orders`, `.csv.gz`): the timestamp goes before both."""
    base, dot, last = name.rpartition(".")
    if not dot or not base:
        return name, ""
    if last.lower() == "gz":
        inner, dot2, ext = base.rpartition(".")
        if dot2 and inner and len(ext) <= 8:
            return inner, f".{ext}.{last}"
    if len(last) > 8:
        return name, ""
    return base, f".{last}"


def _write_report(path: Path, report: dict[str, Any]) -> None:
    """Write the report whole or not at all (a temporary dotfile, then renamed)."""
    temporary = path.with_name(f".{uuid.uuid4().hex[:8]}.tmp")
    temporary.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    os.replace(temporary, path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1_048_576):
            digest.update(chunk)
    return digest.hexdigest()


def _printable(name: str) -> str:
    """A name as text any JSON or terminal takes: undecodable bytes shown as U+FFFD."""
    return keep(name, 1000)


def quarantined(
    conn: Connection, actor: Actor, load_id: int, *, limit: int = 50
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A load and the records it put in quarantine (what a drop report points at)."""
    require(actor, Permission.RECORDS_READ)
    found = quarantine_store.get_load(conn, load_id)
    if found is None:
        raise NotFound(
            f"no load {load_id}", hint="the load id is in the file's .report.json (load_id)"
        )
    return found, quarantine_store.filed_by_load(conn, load_id, limit=limit)
