"""The dask client every parallel command uses: a local cluster by default, an existing one on request."""

from collections.abc import Iterator
from contextlib import contextmanager

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
            raise TnqError(f"cannot reach the dask scheduler at {scheduler} ({err}); check the address or drop --scheduler") from err
        with client:
            yield client
        return
    if workers < 1:
        raise TnqError(f"--workers must be at least 1, got {workers}")
    with dask.config.set({"distributed.worker.daemon": False, "distributed.logging.distributed": "error"}):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
            with Client(cluster) as client:
                yield client
