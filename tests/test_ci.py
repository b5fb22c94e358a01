"""CI runs exactly the README's commands."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ci_runs_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    assert 'pip install -e ".[all]" && probest tour' in blocks[0]
    test_cmd = blocks[1].strip()
    assert test_cmd == 'pip install -e ".[all,dev]" && pytest'
    assert test_cmd in ci.splitlines()
    assert "pip install -q torch==2.13.0" in ci and "ruff check ." in ci
    assert '"$rc" -eq 5' in ci  # "no tests collected" is a failure


def test_ci_builds_the_docs_site_with_warnings_as_errors():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    build = [ln for ln in ci.splitlines() if ln.startswith("sphinx-build ")]
    assert len(build) == 1 and " -W " in build[0] and " docs " in build[0]
    assert "sphinx-build -W --keep-going -b html docs" in readme
    conf = (ROOT / "docs" / "conf.py").read_text()
    assert "sphinx.ext.intersphinx" not in conf  # offline: nothing fetched at build time
