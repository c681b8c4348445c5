"""``driftline produce --file``: label and id columns, and rows that are events already."""

import pytest

from schemas.exceptions import ConfigError
from streams.sources import file_events


@pytest.fixture()
def csv_file(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,b,is_fraud,id\n1,x,true,u1\n2,y,false,u2\n")
    return path


@pytest.fixture()
def jsonl_file(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": 1, "is_fraud": true, "id": "u1"}\n\n{"b": 2, "id": "u2"}\n')
    return path


def test_csv_label_and_id_columns(csv_file):
    assert list(file_events(csv_file, "is_fraud", "m", "id")) == [
        {"event_id": "u1", "model": "m", "features": {"a": 1, "b": "x"}, "label": True},
        {"event_id": "u2", "model": "m", "features": {"a": 2, "b": "y"}, "label": False}]
    # the default id: <file stem>-<row index from 0>
    assert [e["event_id"] for e in file_events(csv_file, "is_fraud", "m")] == ["data-0", "data-1"]


@pytest.mark.parametrize("label_column, id_column, missing", [
    ("nosuch", None, "nosuch"), ("is_fraud", "nosuch", "nosuch"), (None, "nosuch", "nosuch")])
def test_a_csv_column_the_header_lacks_is_refused_before_any_row(csv_file, label_column,
                                                                 id_column, missing):
    events = file_events(csv_file, label_column, "m", id_column)
    with pytest.raises(ConfigError) as info:
        next(events)
    assert str(info.value) == f"{csv_file}: no column '{missing}' (columns: a, b, is_fraud, id)"


@pytest.mark.parametrize("label_column, id_column", [("nosuch", None), (None, "nosuch")])
def test_a_jsonl_key_no_row_has_is_refused(jsonl_file, label_column, id_column):
    with pytest.raises(ConfigError) as info:
        list(file_events(jsonl_file, label_column, "m", id_column))
    assert str(info.value) == f"{jsonl_file}: no column 'nosuch' (columns: a, is_fraud, id, b)"


def test_a_jsonl_label_some_rows_lack_is_a_gap_not_an_error(jsonl_file):
    events = list(file_events(jsonl_file, "is_fraud", "m", "id"))
    assert events == [
        {"event_id": "u1", "model": "m", "features": {"a": 1}, "label": True},
        {"event_id": "u2", "model": "m", "features": {"b": 2}}]


def test_an_empty_or_missing_id_cell_names_its_line(tmp_path, csv_file):
    csv_file.write_text("a,id\n1,u1\n2,\n")
    with pytest.raises(ConfigError) as info:
        list(file_events(csv_file, None, "m", "id"))
    assert str(info.value) == f"{csv_file}:3: no event id in column 'id'"
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1, "id": "u1"}\n{"a": 2}\n')
    with pytest.raises(ConfigError) as info:
        list(file_events(path, None, "m", "id"))
    assert str(info.value) == f"{path}:2: no event id in column 'id'"


def test_jsonl_events_must_match_the_event_schema(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"event_id": "e1", "features": {"x": 1}}\n'
                    '{"event_id": "e2", "features": {}}\n')
    events = file_events(path, None, "m")
    assert next(events) == {"model": "m", "event_id": "e1", "features": {"x": 1}}
    with pytest.raises(ConfigError, match=rf"^{path}:2: features: "):
        next(events)


def test_a_line_longer_than_a_message_names_its_line(tmp_path):
    """Refused before anything is sent (was a 55-line MessageSizeTooLargeError traceback
    after the lines before it were sent: attacker)."""
    from schemas.constants import MAX_EVENT_BYTES, MAX_FEEDBACK_BYTES
    from streams.sources import feedback_file

    events = tmp_path / "events.jsonl"
    events.write_text('{"a": 1}\n{"a": "' + "x" * MAX_EVENT_BYTES + '"}\n')
    with pytest.raises(ConfigError, match=rf"events.jsonl:2: the line is \d+ bytes; a "
                                          rf"message takes at most {MAX_EVENT_BYTES}$"):
        list(file_events(events, None, "default"))
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"event_id": "e", "model": "m", "label": "' + "y" * MAX_FEEDBACK_BYTES
                      + '"}\n')
    with pytest.raises(ConfigError, match=rf"labels.jsonl:1: .* at most {MAX_FEEDBACK_BYTES}$"):
        list(feedback_file(labels))


def test_a_csv_cell_beyond_the_field_limit_is_one_line(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("x,y\n1,true\n" + "a" * 200_000 + ",true\n")
    with pytest.raises(ConfigError, match=r"big.csv:2: field larger than field limit"):
        list(file_events(path, "y", "default"))
