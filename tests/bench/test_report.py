"""bench/report.py keeps every bench's section of docs/benchmarks.md across `./dev bench`."""

import pytest

from bench import drift_detection, report

HEAD = "# Benchmarks\n\nfresh tables\n"


def test_every_section_of_the_committed_report_survives_a_regeneration():
    """What `./dev bench` does: a freshly rendered head, then each marked section of the
    current report spliced back in — every section of docs/benchmarks.md, with its body."""
    current = report.REPORT.read_text()
    sections = report.marked_sections(current)
    names = [name for name, _ in sections]
    assert {drift_detection.SECTION, "checkpoint-size", "feedback-store"} <= set(names)
    regenerated = HEAD
    for name, body in sections:
        regenerated = report.splice(regenerated, name, body)
    assert report.marked_sections(regenerated) == sections
    assert "## Drift detection: delay and false alarms" in regenerated


def test_the_drift_bench_rewrites_its_own_section_and_keeps_the_others():
    text = report.splice(report.splice(HEAD, "a", "A"), drift_detection.SECTION, "old")
    text = report.splice(text, "z", "Z")
    rewritten = report.splice(text, drift_detection.SECTION, "## Drift\nnew")
    assert report.marked_sections(rewritten) == [
        ("a", "A\n"), (drift_detection.SECTION, "## Drift\nnew\n"), ("z", "Z\n")]
    assert rewritten.startswith(HEAD)


def test_a_single_marker_is_refused_instead_of_dropped():
    """The old drift-detection marker had no end: render() would have lost its section."""
    with pytest.raises(ValueError, match="<!-- drift-detection bench -->"):
        report.marked_sections(HEAD + "<!-- drift-detection bench -->\n## Drift\n")
