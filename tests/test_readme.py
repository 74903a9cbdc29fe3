"""The README's code example runs as written."""

import re
from pathlib import Path

from marlshare.components.strategies import STRATEGIES

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_swap_strategies_example_runs(capsys):
    text = README.read_text()
    section = text[text.index("## Swap strategies in code"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    for name in STRATEGIES:
        assert f"{name} " in out
    assert out.count("(32, 4, 6)") == len(STRATEGIES)


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def test_readme_example_output_matches_the_run_in_docs_results():
    """The README quotes a real `make run`; docs/results.md lists every evaluation of that run. The
    numbers the README shows must be those of the table (so a rerun that changes them changes both)."""
    readme = README.read_text()
    results = (README.parent / "docs" / "results.md").read_text()
    section = results[results.index("## The default recipe"):]
    section = section[:section.index("\n## ", 1)]
    evals = {int(_number(f)): _number(r) for f, r in re.findall(r"^\| ([\d,]+) \| [^|]+ \| (-?[\d.]+) \|", section, re.M)}
    assert len(evals) >= 10 and 0 in evals and 240_000 in evals and 60_000 in evals
    start, best, final = map(_number, re.search(r"eval return: start (\S+) -> best (\S+) -> final (\S+)", readme).groups())
    switch = _number(re.search(r"│ pretrain │ ps\s+│\s+0–60,000 │\s+(\S+) │", readme).group(1))
    close = lambda shown, value: abs(shown - value) <= 5e-4 * max(1.0, abs(value))  # noqa: E731 (4 significant digits)
    assert close(start, evals[0]) and close(final, evals[240_000]) and close(switch, evals[60_000])
    assert close(best, max(evals.values()))


def test_readme_sharing_numbers_are_those_of_docs_evidence():
    """Every return the README's "Does sharing matter?" table quotes is in docs/evidence.md's
    bps333_120k table (written by `make evidence`), or among its scripted references."""
    readme = README.read_text()
    section = readme[readme.index("## Does sharing matter?"):readme.index("## Swap strategies in code")]
    evidence = (README.parent / "docs" / "evidence.md").read_text()
    table = evidence[evidence.index("<!-- evidence:bps333_120k -->"):evidence.index("<!-- /evidence:bps333_120k -->")]
    quoted = re.findall(r"\| (-?\d+\.\d \[-?\d+\.\d, -?\d+\.\d\]) \|", section)
    assert len(quoted) == 6
    for value in quoted:
        assert value in table, value
    for value in re.search(r"\*(-?\d+\.\d) / (-?\d+\.\d)\*", section).groups():
        assert f"| {value} [" in table, value
