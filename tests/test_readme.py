"""The README's tour and commands stay true."""

import re
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_tour_runs():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "the README has no python block"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_ci_runs_the_readme_test_command():
    command = re.search(r"Run the tests:\s*```bash\n(.*?)\n```", README, flags=re.S).group(1)
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert command in ci.splitlines()
