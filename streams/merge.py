"""One deterministic order for a partition's two topic-partitions (events, feedback).

Late-label decisions (what is matched, held, expired) depend on how a partition's events
and feedback interleave, so both must be merged the same way on every run, live or
replayed after a crash: by (record timestamp, events before feedback, offset). A record
is released only when the other topic-partition of its partition cannot bring an earlier
one: it has a record buffered, or it is caught up (its next offset is at its high
watermark, as last reported by the broker), or it is not assigned here. This is Kafka
Streams' rule for joins with ``max.task.idle.ms = 0``. Pure: the caller passes the high
watermarks and positions in.

>>> m = Merger("t.events", "t.feedback")
>>> m.add([Record("t.feedback", 0, 0, b"k", b"f", 15), Record("t.events", 0, 0, b"k", b"e", 20)])
>>> m.reset(0, {"t.events": 0, "t.feedback": 0})  # assigned, positions known: buffers dropped
>>> m.add([Record("t.feedback", 0, 0, b"k", b"f", 15), Record("t.events", 0, 0, b"k", b"e", 10),
...        Record("t.events", 0, 1, b"k", b"e", 20)])
>>> [(r.topic[2:], r.offset) for r in m.ready(lambda topic, p: 1)]  # feedback at its end
[('events', 0), ('feedback', 0), ('events', 1)]
>>> m.add([Record("t.events", 0, 2, b"k", b"e", 30)])
>>> m.ready(lambda topic, p: 5 if topic == "t.feedback" else 3)  # feedback 1..4 to come
[]
"""

from collections import deque
from collections.abc import Callable, Iterable, Sequence

from streams.records import Record

#: (topic, partition) -> the broker's last reported high watermark, or None.
Highwater = Callable[[str, int], int | None]


class Merger:
    """Buffers of the two topic-partitions of each partition, released in merge order."""

    def __init__(self, events: str, feedback: str) -> None:
        self.events = events
        self.feedback = feedback
        self._buffers: dict[tuple[str, int], deque[Record]] = {}
        self._next: dict[tuple[str, int], int] = {}
        self._assigned: set[tuple[str, int]] = set()

    def add(self, records: Iterable[Record]) -> None:
        """Buffer fetched records (each topic-partition's in offset order)."""
        for record in records:
            self.extend(record.topic, record.partition, (record,))

    def extend(self, topic: str, partition: int, records: Sequence[Record]) -> None:
        """Buffer fetched records of one topic-partition, in offset order."""
        if records:
            where = (topic, partition)
            self._buffers.setdefault(where, deque()).extend(records)
            self._next[where] = records[-1].offset + 1

    def reset(self, partition: int, positions: dict[str, int | None] | None = None) -> None:
        """``partition`` was (re)assigned, revoked or sought: drop its buffers. Its
        topic-partitions assigned here are the keys of ``positions`` (None: revoked), each
        with its next offset if known."""
        for topic in (self.events, self.feedback):
            where = (topic, partition)
            self._buffers.pop(where, None)
            self._next.pop(where, None)
            self._assigned.discard(where)
            if positions is not None and topic in positions:
                self._assigned.add(where)
                if (offset := positions[topic]) is not None:
                    self._next[where] = offset

    def unknown(self) -> list[tuple[str, int]]:
        """Topic-partitions with buffered records on the other side whose position is
        unknown (the caller asks the consumer and calls :meth:`position`)."""
        found = []
        for topic, partition in list(self._buffers):
            other = (self.feedback if topic == self.events else self.events, partition)
            if (self._buffers[topic, partition] and other not in self._next
                    and other in self._assigned):
                found.append(other)
        return found

    def position(self, topic: str, partition: int, offset: int) -> None:
        """The consumer's position (next offset) of a topic-partition with nothing buffered."""
        if not self._buffers.get((topic, partition)):
            self._next[topic, partition] = max(offset, self._next.get((topic, partition), 0))

    def ready(self, highwater: Highwater) -> list[Record]:
        """Release every record that merge order allows now, partition by partition."""
        out: list[Record] = []
        for partition in sorted({p for _, p in self._buffers}):
            events = self._buffers.get((self.events, partition)) or deque()
            feedback = self._buffers.get((self.feedback, partition)) or deque()
            while events or feedback:
                if events and feedback:
                    first = events if _key(events[0], 0) <= _key(feedback[0], 1) else feedback
                    out.append(first.popleft())
                    continue
                have, other = (events, self.feedback) if events else (feedback, self.events)
                if not self._caught_up(other, partition, highwater):
                    break
                out.extend(have)
                have.clear()
        return out

    def _caught_up(self, topic: str, partition: int, highwater: Highwater) -> bool:
        if (topic, partition) not in self._assigned:
            return True
        position = self._next.get((topic, partition))
        high = highwater(topic, partition)
        return position is not None and high is not None and position >= high


def _key(record: Record, rank: int) -> tuple[int, int, int]:
    return (record.timestamp_ms if record.timestamp_ms is not None else -1, rank,
            record.offset)
