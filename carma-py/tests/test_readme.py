"""The README's Python example runs as written (in a temporary directory)."""

import re

from conftest import ROOT


def test_the_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "one Python example in the README"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "status" in printed and "prob_after" in printed and "'actions':" in printed
    assert (tmp_path / "loan.carma").is_file()
