"""A failing test is reported as a failure, never as the end of the session, even when the parser
trips while pytest reads the failing source (CPython 3.11's ``ast.parse`` racing a compile in a
server's thread raises ``SystemError``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TRIPPING_PARSER = """
import _pytest._code.code as code


def tripping(*args, **kwargs):
    raise SystemError("AST constructor recursion depth mismatch (before=129, after=66)")


code.getstatementrange_ast = tripping
"""

TESTS = """
def test_fails():
    found = {"status": 503}
    assert found["status"] == 200


def test_passes():
    assert sorted([2, 1]) == [1, 2]
"""


def test_a_failure_whose_source_cannot_be_parsed_is_reported_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    (tmp_path / "conftest.py").write_text(TRIPPING_PARSER)
    (tmp_path / "test_sample.py").write_text(TESTS)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "pipedesk_testkit.plugin",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = run.stdout + run.stderr
    assert "INTERNALERROR" not in output, output[-3000:]
    assert "1 failed, 1 passed" in output, output[-3000:]
    assert "assert 503 == 200" in output, output[-3000:]
