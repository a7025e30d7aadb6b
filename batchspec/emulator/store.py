"""Persistent state: pools, nodes, jobs, tasks and job schedules as JSON documents in sqlite
(WAL mode).

The store keeps every document in memory (dicts in insertion order, which is also the FIFO order
the scheduler wants) and writes each change through to sqlite before the HTTP response is sent,
so a `kill -9` loses nothing that a client was told exists. Ids are case-insensitive in Batch
("case-preserving and case-insensitive"), so documents are keyed by the lower-cased id.

Everything runs on the event loop thread: no locking, and one sqlite connection.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import time
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pools (key TEXT PRIMARY KEY, state TEXT, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (pool TEXT, key TEXT, state TEXT, doc TEXT NOT NULL,
                                  PRIMARY KEY (pool, key));
CREATE TABLE IF NOT EXISTS jobs (key TEXT PRIMARY KEY, state TEXT, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (job TEXT, key TEXT, seq INTEGER, state TEXT, doc TEXT NOT NULL,
                                  PRIMARY KEY (job, key));
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (job, state);
CREATE INDEX IF NOT EXISTS tasks_by_seq ON tasks (job, seq);
CREATE TABLE IF NOT EXISTS jobschedules (key TEXT PRIMARY KEY, state TEXT, doc TEXT NOT NULL);
"""

_last_etag = 0


_FILETIME_EPOCH = 116444736000000000  # 1601-01-01 to 1970-01-01 in 100 ns ticks


def new_etag() -> str:
    """A fresh, strictly increasing ETag in the service's `0x8D...` style (a FILETIME)."""
    global _last_etag
    _last_etag = max(time.time_ns() // 100 + _FILETIME_EPOCH, _last_etag + 1)
    return f"0x{_last_etag:X}"


def key(id_: str) -> str:
    """The case-insensitive lookup key of an id."""
    return id_.lower()


class DataDirBusy(Exception):
    """Another emulator already serves this data directory."""


class Store:
    """In-memory documents with write-through persistence to `<data-dir>/batch.sqlite`."""

    def __init__(self, data_dir: Path):
        data_dir.mkdir(parents=True, exist_ok=True)
        # Two emulators on one data dir would both run every task: refuse the second.
        self._lock = open(data_dir / "emulator.lock", "w")  # noqa: SIM115 - held while open
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise DataDirBusy(f"{data_dir} is in use by another emulator") from None
        self.db = sqlite3.connect(str(data_dir / "batch.sqlite"), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process kill (the OS keeps the pages); only a power
        # loss could drop the last commits, which is fine for a development emulator.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self.pools: dict[str, dict] = {}
        self.nodes: dict[str, dict[str, dict]] = {}
        self.jobs: dict[str, dict] = {}
        self.tasks: dict[str, dict[str, dict]] = {}
        self.schedules: dict[str, dict] = {}
        # Task counts per job, kept up to date on every change so that taskcounts (which
        # clients poll) costs O(1) instead of a pass over the job's tasks.
        self._buckets: dict[str, dict[str, tuple[str, int]]] = {}
        self._counts: dict[str, dict[str, list[int]]] = {}
        # Each job's task ids in order, with their keys: made when a listing by id range asks,
        # dropped when a task is added or removed.
        self._by_id: dict[str, tuple[list[str], list[str]]] = {}
        self._seq = 0
        self._load()

    def _load(self) -> None:
        for k, doc in self.db.execute("SELECT key, doc FROM pools ORDER BY rowid"):
            self.pools[k] = json.loads(doc)
            self.nodes.setdefault(k, {})
        for pool, k, doc in self.db.execute("SELECT pool, key, doc FROM nodes ORDER BY rowid"):
            self.nodes.setdefault(pool, {})[k] = json.loads(doc)
        for k, doc in self.db.execute("SELECT key, doc FROM jobs ORDER BY rowid"):
            self.jobs[k] = json.loads(doc)
            self.tasks.setdefault(k, {})
        for k, doc in self.db.execute("SELECT key, doc FROM jobschedules ORDER BY rowid"):
            self.schedules[k] = json.loads(doc)
        for job, k, seq, doc in self.db.execute("SELECT job, key, seq, doc FROM tasks ORDER BY seq"):
            self.tasks.setdefault(job, {})[k] = json.loads(doc)
            self.account(job, self.tasks[job][k])
            self._seq = max(self._seq, seq)

    def close(self) -> None:
        """Close the database (after a final checkpoint, so the WAL does not linger)."""
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.db.close()
            self._lock.close()

    # Pools and nodes

    def put_pool(self, doc: dict) -> None:
        """Insert or replace a pool document."""
        k = key(doc["id"])
        self.pools[k] = doc
        self.nodes.setdefault(k, {})
        self.db.execute(
            "INSERT OR REPLACE INTO pools (key, state, doc) VALUES (?, ?, ?)",
            (k, doc.get("state"), json.dumps(doc)),
        )

    def delete_pool(self, pool_key: str) -> None:
        """Remove a pool and its nodes."""
        self.pools.pop(pool_key, None)
        self.nodes.pop(pool_key, None)
        self.db.execute("BEGIN")
        self.db.execute("DELETE FROM pools WHERE key = ?", (pool_key,))
        self.db.execute("DELETE FROM nodes WHERE pool = ?", (pool_key,))
        self.db.execute("COMMIT")

    def put_node(self, pool_key: str, doc: dict) -> None:
        """Insert or replace a node document of a pool."""
        self.nodes.setdefault(pool_key, {})[key(doc["id"])] = doc
        self.db.execute(
            "INSERT OR REPLACE INTO nodes (pool, key, state, doc) VALUES (?, ?, ?, ?)",
            (pool_key, key(doc["id"]), doc.get("state"), json.dumps(doc)),
        )

    def delete_node(self, pool_key: str, node_key: str) -> None:
        """Remove one node."""
        self.nodes.get(pool_key, {}).pop(node_key, None)
        self.db.execute("DELETE FROM nodes WHERE pool = ? AND key = ?", (pool_key, node_key))

    # Job schedules

    def put_schedule(self, doc: dict) -> None:
        """Insert or replace a job schedule document."""
        k = key(doc["id"])
        self.schedules[k] = doc
        self.db.execute(
            "INSERT OR REPLACE INTO jobschedules (key, state, doc) VALUES (?, ?, ?)",
            (k, doc.get("state"), json.dumps(doc)),
        )

    def delete_schedule(self, schedule_key: str) -> None:
        self.schedules.pop(schedule_key, None)
        self.db.execute("DELETE FROM jobschedules WHERE key = ?", (schedule_key,))

    # Jobs and tasks

    def put_job(self, doc: dict) -> None:
        """Insert or replace a job document."""
        k = key(doc["id"])
        self.jobs[k] = doc
        self.tasks.setdefault(k, {})
        self.db.execute(
            "INSERT OR REPLACE INTO jobs (key, state, doc) VALUES (?, ?, ?)",
            (k, doc.get("state"), json.dumps(doc)),
        )

    def delete_job(self, job_key: str) -> None:
        """Remove a job and all of its tasks."""
        self.jobs.pop(job_key, None)
        self.tasks.pop(job_key, None)
        self._by_id.pop(job_key, None)
        self._buckets.pop(job_key, None)
        self._counts.pop(job_key, None)
        self.db.execute("BEGIN")
        self.db.execute("DELETE FROM jobs WHERE key = ?", (job_key,))
        self.db.execute("DELETE FROM tasks WHERE job = ?", (job_key,))
        self.db.execute("COMMIT")

    def put_task(self, job_key: str, doc: dict) -> None:
        """Insert or replace one task (a new task goes to the end of the FIFO order)."""
        self.put_tasks(job_key, [doc])

    def put_tasks(self, job_key: str, docs: list[dict]) -> None:
        """Insert or replace several tasks of a job in one transaction."""
        tasks = self.tasks.setdefault(job_key, {})
        rows = []
        for doc in docs:
            k = key(doc["id"])
            if k not in tasks:
                self._seq += 1
                seq = self._seq
                self._by_id.pop(job_key, None)
            else:
                seq = None
            tasks[k] = doc
            self.account(job_key, doc)
            rows.append((job_key, k, seq, doc.get("state"), json.dumps(doc)))
        self.db.execute("BEGIN")
        # Keep the original seq on update: ON CONFLICT leaves it untouched.
        self.db.executemany(
            "INSERT INTO tasks (job, key, seq, state, doc) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (job, key) DO UPDATE SET state = excluded.state, doc = excluded.doc",
            rows,
        )
        self.db.execute("COMMIT")

    def delete_task(self, job_key: str, task_key: str) -> None:
        """Remove one task."""
        self.tasks.get(job_key, {}).pop(task_key, None)
        self._by_id.pop(job_key, None)
        self._uncount(job_key, task_key)
        self.db.execute("DELETE FROM tasks WHERE job = ? AND key = ?", (job_key, task_key))

    def tasks_by_id(self, job_key: str) -> tuple[list[str], list[str]]:
        """A job's task ids in ascending order, and the key of each."""
        if job_key not in self._by_id:
            pairs = sorted((doc["id"], k) for k, doc in self.tasks.get(job_key, {}).items())
            self._by_id[job_key] = ([i for i, _ in pairs], [k for _, k in pairs])
        return self._by_id[job_key]

    # Task counts

    def account(self, job_key: str, doc: dict) -> None:
        """Re-count one task after its state changed (persisted or not, e.g. `preparing`)."""
        k = key(doc["id"])
        self._uncount(job_key, k)
        state = doc.get("state")
        if state == "completed":
            ok = (doc.get("executionInfo") or {}).get("result") == "success"
            bucket = "succeeded" if ok else "failed"
        elif state in ("preparing", "running"):
            bucket = "running"
        else:
            bucket = "active"
        slots = doc.get("requiredSlots") or 1
        self._buckets.setdefault(job_key, {})[k] = (bucket, slots)
        entry = self._counts.setdefault(job_key, {}).setdefault(bucket, [0, 0])
        entry[0] += 1
        entry[1] += slots

    def _uncount(self, job_key: str, task_key: str) -> None:
        old = self._buckets.get(job_key, {}).pop(task_key, None)
        if old is not None:
            entry = self._counts[job_key][old[0]]
            entry[0] -= 1
            entry[1] -= old[1]

    def task_counts(self, job_key: str) -> tuple[dict[str, int], dict[str, int]]:
        """(task counts, slot counts) by state: active, running, completed, succeeded, failed."""
        counts = self._counts.get(job_key, {})
        out: tuple[dict[str, int], dict[str, int]] = ({}, {})
        for i in (0, 1):
            get = {b: counts.get(b, [0, 0])[i] for b in ("active", "running", "succeeded", "failed")}
            out[i].update(
                active=get["active"],
                running=get["running"],
                completed=get["succeeded"] + get["failed"],
                succeeded=get["succeeded"],
                failed=get["failed"],
            )
        return out
