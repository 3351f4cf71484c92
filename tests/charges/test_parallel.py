"""`bounded_map`, the one bounded dask submitter (charges chunks as completed, curation blocks in order)."""

import pytest

from tnq_data.parallel import bounded_map


def square(x: int) -> int:
    return x * x


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as c:
        yield c


@pytest.mark.parametrize("ordered", [True, False])
def test_every_task_once_with_more_tasks_than_the_window(client, ordered):
    pulled = []

    def tasks():
        for x in range(11):
            pulled.append(x)
            yield (x,)

    results = bounded_map(client, square, tasks(), per_worker=2, ordered=ordered)  # window 2 x 2 threads
    first = next(results)
    assert len(pulled) <= 5  # the window, and the one submitted as the first result was taken
    got = [first, *results]
    if ordered:
        assert [i for i, _ in got] == list(range(11))
    assert sorted(got) == [(x, x * x) for x in range(11)]


def test_no_tasks(client):
    assert list(bounded_map(client, square, [], per_worker=3)) == []
    assert list(bounded_map(client, square, [], per_worker=3, ordered=False)) == []
