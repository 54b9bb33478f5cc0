"""The short way out of the process loses nothing: status, atexit handlers, buffered output and open
files survive it, and a running non-daemon thread is waited for."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imgcls import __version__
from imgcls.quick_exit import exit_code


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_atexit_buffered_output_and_open_files_survive(tmp_path: Path) -> None:
    done = run_python(
        """
        import atexit, sys
        from pathlib import Path
        from imgcls.quick_exit import exit_now
        atexit.register(lambda: Path("atexit.txt").write_text("ran"))
        kept = open("open.txt", "w")  # never closed nor flushed by the program
        kept.write("x" * 50_000)
        sys.stdout.write("y" * 100_000)  # a pipe: block-buffered, not yet written
        exit_now(3)
        """,
        tmp_path,
    )
    assert done.returncode == 3, done.stderr
    assert (tmp_path / "atexit.txt").read_text() == "ran"
    assert (tmp_path / "open.txt").read_text() == "x" * 50_000
    assert done.stdout == "y" * 100_000


def test_a_running_non_daemon_thread_is_waited_for(tmp_path: Path) -> None:
    done = run_python(
        """
        import threading, time
        from pathlib import Path
        from imgcls.quick_exit import exit_now
        def work():
            time.sleep(0.5)
            Path("thread.txt").write_text("finished")
        threading.Thread(target=work).start()
        exit_now(4)
        """,
        tmp_path,
    )
    assert done.returncode == 4, done.stderr
    assert (tmp_path / "thread.txt").read_text() == "finished"


def test_the_command_keeps_argparse_statuses(tmp_path: Path) -> None:
    version = run_python("import runpy; runpy.run_module('imgcls', run_name='__main__')", tmp_path)
    assert version.returncode == 0  # no command: the help, status 0
    assert "usage" in version.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "imgcls", "--version"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0 and __version__ in shown.stdout + shown.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "imgcls", "train", "--no-such-option"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--no-such-option" in bad.stderr


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (3, 3), (256, 0), (-1, 255), (True, 1)])
def test_exit_code_is_what_sys_exit_would_end_with(code: object, status: int) -> None:
    assert exit_code(code) == status


def test_exit_code_prints_a_message_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code("imgcls: gone wrong") == 1
    assert capsys.readouterr().err == "imgcls: gone wrong\n"
