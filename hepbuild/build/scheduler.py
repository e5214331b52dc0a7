"""Running cells in parallel while a child always waits for its parent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class OrderedRunner(Generic[Item, Outcome]):
    """Start each item once its parent has succeeded; skip it when the parent failed.

    A parent that is not among the items (its cell was not selected) counts as done: its
    image is expected to exist already.
    """

    def __init__(
        self,
        *,
        id_of: Callable[[Item], str],
        parent_of: Callable[[Item], str | None],
        work: Callable[[Item], Outcome],
        skip: Callable[[Item, str], Outcome],
        succeeded: Callable[[Outcome], bool],
    ) -> None:
        self._id_of = id_of
        self._parent_of = parent_of
        self._work = work
        self._skip = skip
        self._succeeded = succeeded

    def run(self, items: Sequence[Item], max_workers: int) -> dict[str, Outcome]:
        known = {self._id_of(item) for item in items}
        results: dict[str, Outcome] = {}
        waiting = list(items)
        running: dict[Future[Outcome], Item] = {}
        with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
            while waiting or running:
                waiting = self._start_ready(pool, waiting, running, results, known)
                if not running:
                    continue
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = running.pop(future)
                    results[self._id_of(item)] = future.result()
        return results

    def _start_ready(self, pool: ThreadPoolExecutor, waiting: list[Item],
                     running: dict[Future[Outcome], Item], results: dict[str, Outcome],
                     known: set[str]) -> list[Item]:
        still_waiting: list[Item] = []
        for item in waiting:
            parent = self._parent_of(item)
            ready = parent is None or parent not in known
            if ready or (parent in results and self._succeeded(results[parent])):
                running[pool.submit(self._work, item)] = item
            elif parent is not None and parent in results:
                results[self._id_of(item)] = self._skip(item, parent)
            else:
                still_waiting.append(item)
        return still_waiting
