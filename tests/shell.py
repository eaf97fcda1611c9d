"""``kith`` commands run inside the test process, as a shell would run them but without a new Python.

A ``kith`` subprocess spends most of its time starting Python and importing the server;
the command itself takes milliseconds. ``run_kith`` calls ``server.cli.main`` with the
environment (and working directory) the subprocess would have had, stdin from a string,
and stdout and stderr captured, including what the command logs (``main`` points its log
handler at the stderr it finds). It returns a ``subprocess.CompletedProcess`` as
``subprocess.run`` does: an argparse error or ``--version`` gives its exit code, an
uncaught exception a traceback on stderr and exit code 1, as ``python -m server`` would.

It runs the command on a thread of its own (``main`` calls ``asyncio.run``, which cannot
run inside a test's event loop) and waits for it, one command at a time. Tests that must
prove the real console script or a long-running process (``serve``, ``worker``, signals)
still start a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from server.cli import main

_ONE_AT_A_TIME = threading.Lock()  # os.environ, cwd, sys.stdin/stdout/stderr are process-wide


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _logging_to(stream: io.StringIO) -> Iterator[None]:
    """Put back the logging ``main`` configures for itself (``server.logs.configure``: a handler on
    the stderr it sees, here ``stream``), so the test process's own logging is as it was."""
    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "alembic")
    saved = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).level) for name in names}
    try:
        yield
    finally:
        for name, (handlers, level) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)  # sys.exit("message"), as the interpreter prints it
    return 1


def run_kith(
    args: list[str], *, env: Mapping[str, str], stdin: str | None = None, cwd: str | Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``kith ARGS`` in this process with exactly ``env`` as its environment; see the module docstring."""
    out, err = io.StringIO(), io.StringIO()
    result: dict[str, Any] = {}

    def command() -> None:
        with _ONE_AT_A_TIME, _environment(env), _logging_to(err):
            old_cwd = os.getcwd()
            old_stdin = sys.stdin
            sys.stdin = io.StringIO(stdin or "")
            try:
                if cwd is not None:
                    os.chdir(cwd)
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    try:
                        result["code"] = main(list(args))
                    except SystemExit as exc:
                        result["code"] = _exit_code(exc)
                    except BaseException:
                        traceback.print_exc()
                        result["code"] = 1
            finally:
                sys.stdin = old_stdin
                os.chdir(old_cwd)

    thread = threading.Thread(target=command, name="kith " + " ".join(args[:2]))
    thread.start()
    thread.join()
    return subprocess.CompletedProcess(["kith", *args], result.get("code", 1), out.getvalue(), err.getvalue())


def kith(settings: Any, *args: str, stdin: str | None = None, env_extra: Mapping[str, str] | None = None):
    """``kith ARGS`` against the test's database: this environment plus its domain and database URL."""
    env = {
        **os.environ,
        "KITH_DOMAIN": settings.domain,
        "KITH_DATABASE_URL": settings.database_url,
        **(env_extra or {}),
    }
    return run_kith(list(args), env=env, stdin=stdin)
