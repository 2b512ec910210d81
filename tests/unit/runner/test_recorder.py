"""Attribution of outgoing calls to tests, with a real set writer in a temp folder."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from wiretape.model import HttpRequest, HttpResponse, LinkKind, SetInfo
from wiretape.proxy.httpconn import Finished
from wiretape.runner.recorder import Lane, Recorder, trace_id_of
from wiretape.store.reader import load_set
from wiretape.store.writer import SetWriter

TRACE = "0af7651916cd43dd8448eb211c80319c"


def finished(target: str) -> Finished:
    return Finished(
        request=HttpRequest("GET", target, (("Host", "x"),)),
        response=HttpResponse(200, "OK", (("Content-Length", "2"),), b"ok"),
        error=None,
        started=1.0,
        duration=0.001,
    )


def writer(tmp_path: Path) -> SetWriter:
    return SetWriter(tmp_path, SetInfo(name="s", created=0.0, app_command="app"))


def test_trace_id_of_reads_w3c_traceparent() -> None:
    assert trace_id_of((("traceparent", f"00-{TRACE}-b7ad6b7169203331-01"),)) == TRACE
    assert trace_id_of((("TraceParent", f"00-{TRACE.upper()}-b7ad6b7169203331-01"),)) == TRACE
    assert trace_id_of((("traceparent", "garbage"),)) is None
    assert trace_id_of(()) is None


def test_lane_links_calls_in_flight_and_session_outside(tmp_path: Path) -> None:
    async def scenario() -> None:
        w = writer(tmp_path)
        rec = Recorder(w)
        before = rec.attribute(())
        assert before.link is LinkKind.SESSION and before.test is None
        await rec.add_mock("api", "http", before, finished("/warmup"))
        active = await rec.begin_test("GET", "/orders", ())
        during = rec.attribute(())
        assert (during.test, during.link) == (active.id, LinkKind.LANE)
        await rec.add_mock("api", "http", during, finished("/a"))
        await rec.end_test(active, finished("/orders"))
        late = during  # a call that started during the test and ended after it
        await rec.add_mock("api", "http", late, finished("/late"))
        w.close()
        loaded = load_set(w.path)
        assert [m.request.target for m in loaded.session] == ["/warmup"]
        assert [m.request.target for m in loaded.mocks[active.id]] == ["/a", "/late"]

    asyncio.run(scenario())


def test_lane_admits_one_request_at_a_time(tmp_path: Path) -> None:
    async def scenario() -> None:
        w = writer(tmp_path)
        rec = Recorder(w)
        first = await rec.begin_test("GET", "/one", ())
        second = asyncio.create_task(rec.begin_test("GET", "/two", ()))
        await asyncio.sleep(0.01)
        assert not second.done()
        await rec.end_test(first, finished("/one"))
        nxt = await asyncio.wait_for(second, 5)
        assert nxt.id.startswith("0002-")
        await rec.end_test(nxt, finished("/two"))
        w.close()

    asyncio.run(scenario())


def test_the_lane_passes_to_callback_and_task_waiters_in_arrival_order() -> None:
    async def scenario() -> None:
        lane = Lane()
        order: list[str] = []
        assert lane.try_take()
        assert not lane.try_take()
        lane.wait(lambda: order.append("first callback"))
        task = asyncio.create_task(lane.take())
        await asyncio.sleep(0)
        lane.wait(lambda: order.append("last callback"))

        lane.release()  # to the first callback, at once, inside release
        assert order == ["first callback"] and lane.busy
        lane.release()  # to the task
        await asyncio.wait_for(task, 5)
        assert order == ["first callback"] and lane.busy
        lane.release()
        assert order == ["first callback", "last callback"] and lane.busy
        lane.release()
        assert not lane.busy and lane.try_take()

    asyncio.run(scenario())


def test_a_waiter_that_leaves_never_keeps_the_lane() -> None:
    async def scenario() -> None:
        lane = Lane()
        assert lane.try_take()
        called: list[str] = []

        def withdrawn() -> None:
            called.append("withdrawn")

        lane.wait(withdrawn)
        assert lane.cancel(withdrawn) and not lane.cancel(withdrawn)
        # A task cancelled while waiting, and one cancelled after the lane was handed to it.
        waiting = asyncio.create_task(lane.take())
        handed = asyncio.create_task(lane.take())
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        lane.release()  # to ``handed``, which is cancelled before it runs
        handed.cancel()
        await asyncio.gather(handed, return_exceptions=True)
        assert called == []
        assert not lane.busy, "a cancelled waiter kept the lane"
        assert lane.try_take()

    asyncio.run(scenario())


def test_begin_test_now_takes_a_free_lane_and_end_test_now_passes_it_on(tmp_path: Path) -> None:
    async def scenario() -> None:
        w = writer(tmp_path)
        rec = Recorder(w)
        first = rec.begin_test_now("GET", "/one", ())
        assert first is not None
        assert rec.begin_test_now("GET", "/two", ()) is None
        started: list[str] = []
        rec.lane.wait(lambda: started.append(rec.start_test("GET", "/two", ()).id))
        rec.end_test_now(first, finished("/one"))
        assert started and started[0].startswith("0002-"), started
        assert rec.tests == 1
        w.close()
        loaded = load_set(tmp_path / "s")
        assert [t.request.target for t in loaded.tests] == ["/one"]

    asyncio.run(scenario())


@pytest.mark.parametrize("count", [2, 3])
def test_concurrent_overlap_is_ambiguous_and_traceparent_is_exact(
    tmp_path: Path, count: int
) -> None:
    async def scenario() -> None:
        w = writer(tmp_path)
        rec = Recorder(w, concurrent=True)
        tests = [await rec.begin_test("GET", f"/t{i}", ()) for i in range(count)]
        assert all(t.injected_traceparent for t in tests)
        guess = rec.attribute(())
        assert guess.link is LinkKind.AMBIGUOUS
        assert guess.test == tests[-1].id
        assert set(guess.candidates) == {t.id for t in tests[:-1]}
        header = (("traceparent", tests[0].injected_traceparent or ""),)
        exact = rec.attribute(header)
        assert (exact.test, exact.link) == (tests[0].id, LinkKind.TRACEPARENT)
        for t in tests[1:]:
            await rec.end_test(t, finished("/x"))
        alone = rec.attribute(())
        assert (alone.test, alone.link) == (tests[0].id, LinkKind.WINDOW)
        await rec.end_test(tests[0], finished("/x"))
        assert rec.attribute(()).link is LinkKind.SESSION
        w.close()

    asyncio.run(scenario())


def test_an_inbound_traceparent_is_kept_not_replaced(tmp_path: Path) -> None:
    async def scenario() -> None:
        w = writer(tmp_path)
        rec = Recorder(w, concurrent=True)
        given = (("traceparent", f"00-{TRACE}-b7ad6b7169203331-01"),)
        active = await rec.begin_test("GET", "/t", given)
        assert active.injected_traceparent is None
        assert rec.attribute(given).link is LinkKind.TRACEPARENT
        await rec.end_test(active, finished("/t"))
        w.close()

    asyncio.run(scenario())
