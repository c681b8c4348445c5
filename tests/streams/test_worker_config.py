"""A bad models file stops `driftline worker` with one line and exit code 1."""

import pytest

from tests.helpers import run_cli

BAD_FILES = {
    "unknown class": ('[models.m]\ntask = "classification"\n'
                      'pipeline = "linear_model.NoSuchModel()"\n',
                      "unknown River class 'linear_model.NoSuchModel'"),
    "__import__": ('[models.m]\ntask = "classification"\n'
                   "pipeline = \"__import__('os').system('touch /tmp/pwned')\"\n",
                   "'__import__('os')' is not allowed"),
    "dunder attribute": ('[models.m]\ntask = "classification"\n'
                         'pipeline = "linear_model.LogisticRegression.__class__()"\n',
                         "'linear_model.LogisticRegression.__class__' is not allowed"),
    "not a river module": ('[models.m]\ntask = "classification"\n'
                           'pipeline = "os.system(\'true\')"\n', "'os.system' is not allowed"),
    "lambda argument": ('[models.m]\ntask = "classification"\n'
                        'pipeline = "linear_model.LogisticRegression(l2=(lambda: 1)())"\n',
                        "is not allowed"),
    "pipeline does not fit the task": ('[models.m]\ntask = "classification"\n'
                                       'pipeline = "linear_model.LinearRegression()"\n',
                                       "does not end in a River Classifier"),
    "bad TOML": ('[models.m\ntask = "classification"\n', "models file is not valid TOML"),
    "unknown task": ('[models.m]\ntask = "clustering"\n'
                     'pipeline = "tree.HoeffdingTreeClassifier()"\n',
                     "models file: models.m.task: Input should be 'classification', "
                     "'regression' or 'anomaly'"),
    "unknown metric": ('[models.m]\ntask = "classification"\nmetric = "eval"\n'
                       'pipeline = "tree.HoeffdingTreeClassifier()"\n', "unknown metric 'eval'"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_models_file_stops_start_up(name, tmp_path):
    text, expected = BAD_FILES[name]
    models = tmp_path / "models.toml"
    models.write_text(text)
    result = run_cli("worker", env={"DRIFTLINE_MODELS": str(models), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("driftline: ")
    assert expected in lines[0]
    assert not (tmp_path / "pwned").exists()


def test_missing_models_file_is_one_line(tmp_path):
    result = run_cli("worker", env={"DRIFTLINE_MODELS": str(tmp_path / "nope.toml")})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"driftline: models file {tmp_path / 'nope.toml'}: No such file or directory"]
