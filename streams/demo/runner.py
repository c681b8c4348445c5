"""The demo's live part: send the stream, read every output, ask the worker, show it all.

Three tasks on one event loop: the sender (paced to ``rate`` rows per second), the prober
(the worker's ``/metrics`` and ``/models`` every second) and the reader, which follows the
predictions, dead-letter and alerts topics from their start and ends once every message
sent has its one output and every alert published has been read.
"""

import asyncio
import time
from collections.abc import Iterable
from typing import Protocol

import aiohttp

from schemas import constants
from schemas.exceptions import DriftlineError
from schemas.settings import Settings
from streams.demo import probe
from streams.demo.dataset import Message
from streams.demo.services import Worker
from streams.demo.tracker import RunState
from streams.kafka_clients import make_producer
from streams.kafka_security import kafka_security_kwargs
from streams.topic_reader import count_records, follow

#: Seconds without a single new output, once everything is sent, before giving up.
STALL_SECONDS = 60.0
#: Seconds a starting worker may take to join its group and restore its partitions.
READY_SECONDS = 90.0


class DemoError(DriftlineError):
    """The demo cannot go on (the worker stopped, or stopped answering)."""


class View(Protocol):
    """Whatever shows the run: called often, decides itself when to draw."""

    def tick(self) -> None: ...


async def run(settings: Settings, messages: Iterable[Message], rate: float, state: RunState,
              view: View, worker: Worker) -> None:
    """Send ``messages`` (pacing rows to ``rate`` per second, 0 = no pacing) and read
    until each has its output; raises :class:`DemoError` if the worker fails."""
    timeout = aiohttp.ClientTimeout(total=2.0)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _until_ready(session, worker)
        state.started = time.monotonic()
        sender = asyncio.create_task(_send(settings, messages, rate, state))
        prober = asyncio.create_task(_probe(session, worker.web_port, state))
        try:
            await _read(settings, state, view, worker, sender)
            await sender
            state.stats = await probe.ask(session, worker.web_port) or state.stats
        finally:
            for task in (sender, prober):
                task.cancel()
            await asyncio.gather(sender, prober, return_exceptions=True)


async def _send(settings: Settings, messages: Iterable[Message], rate: float,
                state: RunState) -> None:
    producer = make_producer(settings, client_id=f"{settings.app_id}-demo", linger_ms=5)
    await producer.start()
    loop = asyncio.get_running_loop()
    start = loop.time()
    rows = 0
    last_row = None
    pending: list[asyncio.Future[object]] = []
    events = 0  # messages that have an output (late labels on the feedback topic have none)
    try:
        for message in messages:
            pending.append(await producer.send(settings.topic(message.topic), message.value,
                                               key=message.key))
            events += message.topic == constants.EVENTS
            state.labels_sent += message.topic == constants.FEEDBACK
            if message.row is not None and message.row != last_row:
                last_row, rows = message.row, rows + 1
                ahead = rows / rate - (loop.time() - start) if rate > 0 else 0.0
                if ahead > 0.02:
                    await asyncio.sleep(ahead)  # pacing to the requested rate
            if len(pending) >= 500:
                await asyncio.gather(*pending)
                state.sent = events
                pending.clear()
        await asyncio.gather(*pending)
        state.sent = events
        state.sending_done = True
    finally:
        await producer.stop()


async def _until_ready(session: aiohttp.ClientSession, worker: Worker) -> None:
    """Wait until the worker has its partitions, so that the view shows it working live."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_SECONDS
    while not await probe.ready(session, worker.web_port):
        if not worker.process.alive():
            raise DemoError(f"the worker stopped; its log ({worker.log_path}) ends:\n"
                            f"{worker.tail()}")
        if loop.time() > deadline:
            raise DemoError(f"the worker was not ready within {READY_SECONDS:.0f} s; "
                            f"see {worker.log_path}")
        await asyncio.sleep(0.2)  # polling /ready with a deadline


async def _probe(session: aiohttp.ClientSession, port: int, state: RunState) -> None:
    while True:
        stats = await probe.ask(session, port)
        if stats is not None:
            state.stats = stats
        await asyncio.sleep(1.0)  # polling interval of the worker's web views


async def _read(settings: Settings, state: RunState, view: View, worker: Worker,
                sender: asyncio.Task[None]) -> None:
    suffixes = (constants.PREDICTIONS, constants.DEADLETTER, constants.ALERTS)
    topics = {settings.topic(s): s for s in suffixes}
    loop = asyncio.get_running_loop()
    tracker = state.tracker
    last_change, last_outputs = loop.time(), 0
    alerts_published: int | None = None
    batches = follow(settings.kafka_bootstrap, list(topics), timeout=60.0,
                     **kafka_security_kwargs(settings))
    try:
        async for batch in batches:
            for record in batch:
                tracker.add(topics[record.topic], record.value)
            view.tick()
            if sender.done() and sender.exception() is not None:
                raise sender.exception()  # type: ignore[misc]
            if not worker.process.alive():
                raise DemoError(f"the worker stopped; its log ({worker.log_path}) ends:\n"
                                f"{worker.tail()}")
            now = loop.time()
            if tracker.outputs != last_outputs:
                last_change, last_outputs = now, tracker.outputs
            elif state.sending_done and now - last_change > STALL_SECONDS:
                raise DemoError(f"no output from the worker for {STALL_SECONDS:.0f} s "
                                f"({tracker.outputs} of {state.total}); see {worker.log_path}")
            if state.sending_done and tracker.outputs >= state.total:
                if alerts_published is None:
                    alerts_published = await count_records(settings.kafka_bootstrap,
                                                           settings.topic(constants.ALERTS))
                if len(tracker.alerts) >= alerts_published:
                    return
    finally:
        await batches.aclose()
