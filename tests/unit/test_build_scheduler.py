"""Ordered parallel runs: a child starts only after its parent, and is skipped if it failed."""

from __future__ import annotations

import threading
import time

from hepbuild.build.scheduler import OrderedRunner

# (id, parent, ok)
ITEMS = [("a", None, True), ("b", None, False), ("a1", "a", True), ("b1", "b", True),
         ("a2", "a1", True), ("c", "elsewhere", True)]


def _runner(log: list[str], lock: threading.Lock) -> OrderedRunner[tuple, str]:
    def work(item: tuple) -> str:
        with lock:
            log.append(f"start {item[0]}")
        time.sleep(0.05)
        with lock:
            log.append(f"end {item[0]}")
        return "ok" if item[2] else "failed"

    return OrderedRunner(id_of=lambda i: i[0], parent_of=lambda i: i[1], work=work,
                         skip=lambda i, parent: f"skipped for {parent}",
                         succeeded=lambda r: r == "ok")


def test_children_wait_for_parents_and_skip_after_a_failure() -> None:
    log: list[str] = []
    results = _runner(log, threading.Lock()).run(ITEMS, max_workers=3)
    assert results == {"a": "ok", "b": "failed", "a1": "ok", "b1": "skipped for b",
                       "a2": "ok", "c": "ok"}
    assert log.index("end a") < log.index("start a1") < log.index("end a1") < log.index("start a2")
    assert "start b1" not in log


def test_independent_items_run_in_parallel() -> None:
    log: list[str] = []
    started = time.monotonic()
    _runner(log, threading.Lock()).run([(str(i), None, True) for i in range(4)], max_workers=4)
    assert time.monotonic() - started < 0.18  # four 0.05 s items, not one after the other
    assert log[:4] == [f"start {i}" for i in range(4)] or sorted(log[:4]) == sorted(
        f"start {i}" for i in range(4))
