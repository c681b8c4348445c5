"""bench/report.py keeps every bench's section of docs/benchmarks.md across `./dev bench`."""

import pytest

from bench import drift_detection, report
from bench.explain import explain

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


def _results() -> dict:
    import json

    root = report.REPORT.parent.parent / "bench" / "results"
    out = json.loads((root / "latest.json").read_text())
    out["profile"] = json.loads((root / "profile.json").read_text())
    return out


def test_every_target_that_can_be_missed_has_an_explanation():
    """Issue 16: each unmet target is explained with its profile, in the printout and the
    report; a target whose text the explanations do not know would print none."""
    out = _results()
    rows = report.targets(out)
    assert len(rows) >= 10
    for target, _, met in rows:
        if met == "reported":
            continue
        why = explain(target, out)
        assert why, target
        if target.startswith("Driftline >="):
            assert "profile: the model" in why and "µs per event" in why, target


def test_an_unmet_target_is_printed_with_why_and_a_met_one_without():
    out = _results()
    out["aiokafka"] = {**out["aiokafka"], "rate": out["driftline"]["rate"] * 2}  # 0.5x: unmet
    lines = report.target_lines(out)
    first = next(i for i, line in enumerate(lines) if "plain aiokafka loop (checkpoints" in line)
    assert lines[first].startswith("[NOT met]")
    assert lines[first + 1].startswith("    why: the worker does more per event than the loop")
    out["aiokafka"]["rate"] = out["driftline"]["rate"] / 2  # 2.0x: met
    lines = report.target_lines(out)
    first = next(i for i, line in enumerate(lines) if "plain aiokafka loop (checkpoints" in line)
    assert lines[first].startswith("[met]") and not lines[first + 1].startswith("    why:")
    out["recovery"] = {k: v for k, v in out["recovery"].items() if k != "supervised"}
    out["recovery"]["restart_to_first_prediction_s"] = 5.0  # a fresh process, unmet
    section = "\n".join(report.why_section(out))
    assert "plain aiokafka loop (checkpoints" not in section
    assert "**kill -9 to first new prediction <= 1 s (a fresh process)**" in section
