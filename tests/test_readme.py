"""The README is a front door that keeps its promises: its two commands open it and are CI's,
its example runs and is the docs' front page's, its links lead somewhere, and it stays short."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import minibatch as mb

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
FENCES = re.findall(r"```(\w+)\n(.*?)\n```", README, flags=re.S)
EXAMPLE = next(body for lang, body in FENCES if lang == "python")
LINKS = re.findall(r"\]\(([^)\s]+)\)", README)


def test_readme_starts_with_the_two_commands():
    """The first two blocks: the demo, then the test suite (what a fresh machine runs)."""
    (lang0, demo), (lang1, tests) = FENCES[:2]
    assert (lang0, lang1) == ("bash", "bash")
    assert demo.strip() == (
        'python3 -m venv .venv && .venv/bin/pip install ".[demo]" '
        "&& .venv/bin/python -m minibatch.demo"
    )
    assert tests.strip() == (
        'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest'
    )
    assert README.index("```bash") < README.index("\n## "), "the commands come first"


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = FENCES[1][1].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_usage_example_runs():
    namespace: dict = {}
    exec(compile(EXAMPLE.replace("10_000", "2_000"), "README.md", "exec"), namespace)
    assert len(namespace["approx"].hist) == 2_000


def test_usage_example_is_the_docs_front_page_and_getting_started_example():
    for page in ("index.md", "getting_started.md"):
        assert f"```python\n{EXAMPLE}\n```" in (ROOT / "docs" / page).read_text(), page


def test_readme_is_short_with_one_example():
    assert len(README.splitlines()) <= 100
    assert [lang for lang, _ in FENCES] == ["bash", "bash", "python"]
    assert "|---|" in README and README.count("\n|") <= 6, "one table: the supported versions"


def test_links_lead_to_files_and_anchors_that_exist():
    local = [link for link in LINKS if not link.startswith("https://")]
    assert {"docs/api.md", "docs/getting_started.md", "CHANGELOG.md"} <= set(local)
    for link in local:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.is_file(), link
        if anchor:
            headings = re.findall(r"^#+ (.*)$", target.read_text(), flags=re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
            assert anchor in slugs, link


def test_supported_versions_are_the_packages():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pythons = [c.rsplit(" ", 1)[1] for c in meta["classifiers"] if c.startswith("Programming")]
    rows = re.findall(r"^\| CPython (3\.\d+) \| ([\d.x]+) .*?\| ([\d.x]+) ", README, flags=re.M)
    assert [python for python, _, _ in rows] == pythons
    for python, pymc, pytensor in rows:
        wanted = {"3.11": ("5.28.x", "2.38.x")}.get(python, ("6.4.x", "3.3.x"))
        assert (pymc, pytensor) == wanted, python
    assert mb.__version__ in (ROOT / "CHANGELOG.md").read_text()
