"""Every command the README and the pages under docs/ show works as written (issue 33):
each `reslearn ...` line parses with the real parser and its train config validates;
each script it names exists (and a Python one answers --help); each `make` target is in
the Makefile; each Python block compiles. A page that shows a command no rule here knows
fails, so a new kind of command gets a rule, not a pass."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from reslearn.cli import build_parser, train_layers

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_CHECKED = {"pkill", "pip", "cd", "export", "git", "nvidia-smi"}  # others' programs: not ours to test


def blocks(page: Path) -> list[tuple[str, str]]:
    """(language, text) of each fenced block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", page.read_text(), flags=re.S | re.M)


def commands(text: str) -> list[str]:
    """The shell commands of a block: continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        line = line.rstrip()
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        words = shlex.split(cur, comments=True) if cur.strip() else []
        if words:
            out.append(words)
        cur = ""
    return out


def _env_prefix(words: list[str]) -> list[str]:
    """``A=b C=d setsid nohup CMD ...`` -> ``CMD ...``; drops a redirect and a trailing &."""
    while words and (re.match(r"^[A-Z_]+=", words[0]) or words[0] in ("setsid", "nohup")):
        words = words[1:]
    keep = []
    for w in words:
        if w in ("&", ">", "2>&1") or w.startswith((">", "2>")):
            break
        keep.append(w)
    return keep


def check_reslearn(argv: list[str]) -> None:
    parser = build_parser()
    try:
        a = parser.parse_args(argv)
    except SystemExit as e:  # --help exits 0 after printing
        if e.code == 0:
            return
        raise AssertionError(f"reslearn {' '.join(argv)}: does not parse") from e
    if getattr(a, "cfg_dests", None):  # train and reproduce: the config must validate too
        from reslearn.train.config import TrainConfig, apply_layers

        if getattr(a, "config", None):
            a.config = None  # a file the page names (my.toml) is the reader's
        a.argv = argv
        apply_layers(TrainConfig(), train_layers(a)[0])


def check_command(words: list[str]) -> None:
    words = _env_prefix(words)
    if not words or words[0] in NOT_CHECKED:
        return
    bad = [w for w in words if w.startswith("[") or w == "..." or "|" in w]
    assert not bad, f"{' '.join(words)}: {bad} is a usage pattern, not a command that runs as written"
    head = words[0]
    if head == "reslearn":
        check_reslearn(words[1:])
    elif head == "torchrun":
        check_reslearn(words[words.index("reslearn") + 1 :])  # ... -m reslearn SUBCOMMAND ...
    elif head == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M)
        assert words[1] in targets, f"make {words[1]}: no such target"
    elif head in ("python", "python3", "bash"):
        script = words[1]
        if script.startswith("../shared/"):
            return  # the workspace's shared data, not this repository's
        assert (ROOT / script).is_file(), f"{' '.join(words)}: {script} does not exist"
        if head != "bash" and script.startswith("benchmarks/"):
            r = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, timeout=120)
            assert r.returncode == 0, f"{script} --help: {r.stderr.decode()[-500:]}"
    else:
        raise AssertionError(f"a command no rule knows: {' '.join(words)} (add a rule to {__file__})")


CASES = [
    pytest.param(words, id=f"{page.name}:{' '.join(words)[:60]}")
    for page in PAGES
    for lang, text in blocks(page)
    if lang == "bash"
    for words in commands(text)
]


def test_pages_show_commands():
    assert len(CASES) >= 40, len(CASES)  # the pages were read (a broken fence reads as none)


@pytest.mark.parametrize("words", CASES)
def test_every_command_a_page_shows_works_as_written(words):
    check_command(words)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_python_block_compiles(page):
    for lang, text in blocks(page):
        if lang == "python":
            compile(text, str(page), "exec")


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_link_between_pages_leads_somewhere(page):
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" not in target:
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which is not there"


def test_the_readme_is_short_and_the_studies_page_lists_every_study():
    from reslearn.reproduce import STUDIES

    assert len((ROOT / "README.md").read_text().splitlines()) <= 300
    text = (ROOT / "docs" / "reproducing.md").read_text()
    for name, study in STUDIES.items():
        assert f"| `{name}` | {study.about} |" in text, name


def test_a_wrong_flag_on_a_page_would_fail():
    with pytest.raises(AssertionError, match="does not parse"):
        check_command(["reslearn", "train", "--no-such-flag"])
    with pytest.raises(ValueError, match="iterations"):
        check_command(["reslearn", "train", "--iterations", "-2"])
    with pytest.raises(AssertionError, match="usage pattern"):
        check_command(["reslearn", "eval", "runs/r56", "[--json]"])
    with pytest.raises(AssertionError, match="no rule"):
        check_command(["curl", "http://example.com"])
    assert isinstance(build_parser(), argparse.ArgumentParser)


def results_rows(readme: str) -> list[tuple[str, list[str], list[str]]]:
    """(what, the numbers of the "ours" cell, the pages its details cell links to) of each
    row of the README's headline results table."""
    section = readme[readme.index("## Results") : readme.index("## Reproduce the paper")]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or cells[0] == "what" or len(cells) < 5:
            continue
        links = [t.split("#")[0] for t in re.findall(r"\]\(([^)]+)\)", cells[-1])]
        rows.append((cells[0], re.findall(r"\d+\.\d+", cells[1]), links))
    return rows


def stale_numbers(readme: str) -> list[str]:
    """Each headline number that the page its row links to does not hold: the README quotes
    its reports (one owner per fact), so a report that moved on (a study in progress) and a
    row that did not show up here."""
    out = []
    for what, numbers, links in results_rows(readme):
        texts = [(ROOT / link).read_text() for link in links]
        out += [f"{what}: {n} is in none of {links}" for n in numbers if not any(n in t for t in texts)]
    return out


def test_the_readme_headline_numbers_are_those_of_the_reports_they_link():
    readme = (ROOT / "README.md").read_text()
    rows = results_rows(readme)
    assert len(rows) >= 5 and all(numbers and links for _, numbers, links in rows), rows
    assert stale_numbers(readme) == []
    # A number the report does not hold (an old interim figure) is found:
    at = readme.index("## Results")
    stale = readme[:at] + readme[at:].replace(rows[0][1][0], "99.99", 1)
    assert stale_numbers(stale), "a stale number would pass"
