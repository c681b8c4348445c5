"""Render the benchmark results as docs/benchmarks.md."""

import re
import statistics
from pathlib import Path
from typing import Any

#: The report :func:`render` regenerates; sections between markers survive it.
REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
_SECTION = re.compile(r"<!-- (?P<name>[\w-]+):begin -->\n(?P<body>.*?)<!-- (?P=name):end -->\n?",
                      re.DOTALL)
_MARKER = re.compile(r"<!--.*?-->")


def splice(text: str, name: str, body: str) -> str:
    """``text`` with the section ``name`` (between ``<!-- name:begin -->`` and
    ``<!-- name:end -->``) replaced by ``body``, or ``body`` appended as that section.

    >>> t = splice("# B\\n", "x", "one")
    >>> t
    '# B\\n\\n<!-- x:begin -->\\none\\n<!-- x:end -->\\n'
    >>> splice(t, "x", "two") == t.replace("one", "two")
    True
    """
    section = f"<!-- {name}:begin -->\n{body.rstrip()}\n<!-- {name}:end -->\n"
    for match in _SECTION.finditer(text):
        if match["name"] == name:
            return text[:match.start()] + section + text[match.end():]
    return text.rstrip("\n") + "\n\n" + section


def marked_sections(text: str) -> list[tuple[str, str]]:
    """The ``(name, body)`` of each marked section of ``text``, in order.

    Raises:
        ValueError: a ``<!-- ... -->`` marker outside a begin/end pair (text a
            regenerated report would silently lose), named in one line.

    >>> marked_sections("# B\\n<!-- x:begin -->\\none\\n<!-- x:end -->\\n")
    [('x', 'one\\n')]
    >>> marked_sections("# B\\n<!-- y bench -->\\ntwo\\n")
    Traceback (most recent call last):
    ...
    ValueError: marker(s) outside a <!-- name:begin --> / <!-- name:end --> pair: <!-- y bench -->
    """
    stray = _MARKER.findall(_SECTION.sub("", text))
    if stray:
        raise ValueError("marker(s) outside a <!-- name:begin --> / <!-- name:end --> pair: "
                         + ", ".join(stray))
    return [(m["name"], m["body"]) for m in _SECTION.finditer(text)]


def _rate(r: dict[str, Any]) -> str:
    return f"{r['rate']:,.0f}"


def render(out: dict[str, Any]) -> str:
    """Markdown tables, with the targets and whether each is met, followed by the marked
    sections other benches wrote into the current report (kept as they are)."""
    text = _render(out)
    for name, body in marked_sections(REPORT.read_text() if REPORT.exists() else ""):
        text = splice(text, name, body)
    return text


def _render(out: dict[str, Any]) -> str:
    m = out["machine"]
    d, a, b, c = out["driftline"], out["in_process"], out["aiokafka"], out["faust"]
    pairs = out["checkpoint_pairs"]
    on_median = statistics.median(p["on"] for p in pairs)
    off_median = statistics.median(p["off"] for p in pairs)
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `./dev bench` on {m['date']}: {m['cpu']}, {m['cores']} cores; "
        f"Python {m['python']}, Kafka {m['kafka']} (local KRaft broker from the Maven jars), "
        f"river {m['river']}, faust-streaming {m['faust-streaming']}, aiokafka "
        f"{m['aiokafka']}. Raw numbers: `bench/results/latest.json`. All ratios compare "
        "runs of this one invocation; broker, bench driver and worker share the machine.",
        "",
        f"## Throughput ({out['events']:,} pre-produced events, 10 numeric features, "
        "labels, the default model)",
        "",
        "From the first prediction acknowledged by the broker to the last (LogAppendTime of "
        "the predictions topic), one partition, one worker.",
        "",
        "| consumer | events/s | Driftline / it | target |",
        "|---|---|---|---|",
        f"| **Driftline** (checkpoints on) | **{_rate(d)}** | 1.00 | |",
        f"| (a) River in-process, no Kafka (compute ceiling) | {a:,.0f} | "
        f"{d['rate'] / a:.2f} | |",
        f"| (b) plain aiokafka loop (consume, parse, predict, learn, produce) | {_rate(b)} | "
        f"{d['rate'] / b['rate']:.2f} | >= 0.6: "
        f"{'met' if d['rate'] >= 0.6 * b['rate'] else 'NOT met'} |",
        f"| (c) naive faust-streaming agent (`async for` + `topic.send`) | {_rate(c)} | "
        f"{d['rate'] / c['rate']:.2f} | >= 3: "
        f"{'met' if d['rate'] >= 3 * c['rate'] else 'NOT met'} |",
        "",
        "## Latency (produce to prediction received)",
        "",
        "| offered events/s | achieved | p50 ms | p95 ms | p99 ms | max ms | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in out["latency"]:
        target = ""
        if r["rate"] == 2000:
            target = f"p99 <= 25 ms: {'met' if r['p99_ms'] <= 25 else 'NOT met'}"
        lines.append(f"| {r['rate']:,} | {r['achieved_rate']:,} | {r['p50_ms']:.1f} | "
                     f"{r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {target} |")
    lines += [
        "",
        "## Scale",
        "",
        "| partitions | workers | events/s | peak RSS per worker (MiB) |",
        "|---|---|---|---|",
        f"| 1 | 1 | {_rate(d)} | {d['peak_rss_mib']:.0f} |",
    ]
    for r, (p, w) in zip(out["scale"], ((4, 1), (4, 2)), strict=True):
        lines.append(f"| {p} | {w} | {_rate(r)} | {r['peak_rss_mib']:.0f} |")
    lines += [
        "",
        "The machine has 2 cores shared by the broker, the worker(s) and the bench driver, "
        "so a second worker process competes with the broker rather than adding a core.",
        "",
        f"| model ({out['models'][0]['events']:,} events, 1 partition) | events/s | "
        "peak RSS (MiB) |",
        "|---|---|---|",
    ]
    for r in out["models"]:
        lines.append(f"| {r['model']} | {_rate(r)} | {r['peak_rss_mib']:.0f} |")
    rec = out["recovery"]
    ratio = on_median / off_median
    lines += [
        "",
        "## Checkpoints and recovery",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| throughput, checkpoints on (median of {len(pairs)}) | {on_median:,.0f} events/s | |",
        f"| throughput, checkpoints off (median of {len(pairs)}) | {off_median:,.0f} events/s "
        "| |",
        f"| throughput, checkpoints on / off | {ratio:.2f} | >= 0.9: "
        f"{'met' if ratio >= 0.9 else 'NOT met'} |",
        f"| kill -9, restart to first new prediction | "
        f"{rec['restart_to_first_prediction_s']:.2f} s | <= 5 s: "
        f"{'met' if rec['restart_to_first_prediction_s'] <= 5 else 'NOT met'} |",
        f"| predictions repeated after the restart (at-least-once, identical) | "
        f"{rec['repeated_after_restart']:,} | |",
        "",
        "On/off runs alternate (" + ", ".join(f"{p['on']:,.0f}/{p['off']:,.0f}"
                                              for p in pairs) + " events/s) on "
        f"{out['pair_events']:,} events each; checkpoints every 1,000 "
        "learned events or 5 s, written to Redis in the background.",
        "",
        "Recovery uses static group membership (`DRIFTLINE_INSTANCE_ID`), so the restarted "
        "worker takes its partition back without waiting for the dead member's session to "
        "expire; it is restored from its newest checkpoint and seeks just past it.",
        "",
    ]
    return "\n".join(lines)
