"""The lint test ament_python packages ship: ament_flake8 (flake8 with ROS 2's rule set and ignore list)
over every Python file of the repository, at the project's 120-column lines instead of ament's 99.

ROS's Debian packages add flake8 plugins (import order, quotes, docstrings, builtins) that ament's
configuration names; from PyPI the test runs flake8's own checkers, pycodestyle and pyflakes."""
import pytest
from ament_flake8.main import main_with_errors

from conftest import REPO_ROOT

LINE_LENGTH = 120
PYTHON_TREES = ["lightlip_ros", "training", "scripts", "test", "launch", "setup.py"]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # ament_flake8 walks the working directory for AMENT_IGNORE markers
    rc, errors = main_with_errors(argv=["--linelength", str(LINE_LENGTH), *PYTHON_TREES])
    assert rc == 0, f"{len(errors)} code style errors:\n" + "\n".join(errors)
