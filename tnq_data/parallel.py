"""Dask for every parallel command: the client (a local cluster or an existing one), a client started only when
needed, and bounded submission (a few tasks per worker thread in flight, results in order or as completed)."""

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Self

from tnq_core.errors import TnqError


@contextmanager
def dask_client(workers: int = 1, scheduler: str | None = None) -> Iterator["distributed.Client"]:  # noqa: F821
    """Yield a `distributed.Client`.

    With `scheduler` (an address such as ``tcp://10.0.0.5:8786``) connect to that cluster, which is how work
    goes beyond one machine; otherwise start a `LocalCluster` of `workers` single-threaded processes (one
    thread each, so external programs such as sqm never oversubscribe the cores). Closed on exit.
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as err:
            raise TnqError(f"cannot reach the dask scheduler at {scheduler} ({err}); check the address or drop `scheduler`") from err
        with client:
            yield client
        return
    if workers < 1:
        raise TnqError(f"`workers` must be at least 1, got {workers}")
    with dask.config.set({"distributed.worker.daemon": False, "distributed.logging.distributed": "error"}):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
            with Client(cluster) as client:
                yield client


class LazyClient:
    """Context whose call starts the `dask_client` on first use, so a run with nothing to compute starts none."""

    def __init__(self, workers: int = 1, scheduler: str | None = None) -> None:
        self.workers, self.scheduler = workers, scheduler
        self._context = self._client = None

    def __enter__(self) -> Self:
        return self

    def __call__(self) -> "distributed.Client":  # noqa: F821
        if self._client is None:
            self._context = dask_client(self.workers, self.scheduler)
            self._client = self._context.__enter__()
        return self._client

    def __exit__(self, *exc) -> None:
        if self._context is not None:
            self._context.__exit__(*exc)


def bounded_map(client: "distributed.Client", func: Callable[..., Any], tasks: Iterable[tuple],  # noqa: F821
                per_worker: int, ordered: bool = True) -> Iterator[tuple[int, Any]]:
    """Yield ``(i, func(*task))`` for the i-th task of `tasks`, computed on `client`, each exactly once.

    At most `per_worker` tasks per worker thread are in flight, and `tasks` is read only as they are
    submitted, so memory stays bounded. Results come in input order if `ordered`, else as they complete.
    """
    from distributed import as_completed

    window = per_worker * max(1, sum(client.nthreads().values()))
    queue = enumerate(tasks)

    def submit() -> tuple[int, Any] | None:
        item = next(queue, None)
        return None if item is None else (item[0], client.submit(func, *item[1], pure=False))

    in_flight: deque = deque()
    while len(in_flight) < window and (item := submit()) is not None:
        in_flight.append(item)
    if ordered:
        while in_flight:
            index, future = in_flight.popleft()
            if (item := submit()) is not None:
                in_flight.append(item)
            yield index, future.result()
        return
    index_of = {future: index for index, future in in_flight}
    running = as_completed(list(index_of))
    for future in running:
        if (item := submit()) is not None:
            index_of[item[1]] = item[0]
            running.add(item[1])
        yield index_of.pop(future), future.result()


def ordered_map(func: Callable[..., Any], blocks: Iterable[tuple], workers: int = 1, scheduler: str | None = None,
                window: int = 4) -> Iterator[Any]:
    """Yield ``func(*block)`` for each block in input order.

    In-process without dask when ``workers == 1`` and no scheduler; otherwise on a dask client with at most
    ``window`` tasks per worker in flight, so results stream to the caller in bounded memory.
    """
    if workers == 1 and scheduler is None:
        yield from (func(*block) for block in blocks)
        return
    with dask_client(workers, scheduler) as client:
        for _, result in bounded_map(client, func, blocks, window):
            yield result
