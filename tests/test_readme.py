"""The README's code example runs as written."""

import re
from pathlib import Path

from components.strategies import STRATEGIES

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
