"""A pytest plugin: no known secret may reach a log record or an escaped exception's text.

Enabled for every run by ``pytest_plugins`` in ``tests/conftest.py``. For the whole session
it keeps a handler on the root logger at DEBUG and reads the text of every exception that
escapes a test (``call.excinfo``, causes and contexts included). Each text is checked against
:data:`tests._support.secrets.KNOWN_SECRETS` as it arrives, so nothing is stored but the offending
lines; at session end any finding is printed and the run fails (exit status 1).

Records of third-party SDKs that some tests drive on purpose as a reference (a stock boto3
client logs ``X-Amz-Security-Token`` at DEBUG, in ``botocore.endpoint`` and
``botocore.auth``) are counted and listed, but do not fail the run: they are not
quotaguard's output. quotaguard's own clients never log through those loggers; the
reliability suite proves that with caplog at DEBUG around real calls
(``tests/reliability/test_secrets.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable

import pytest

from tests._support.secrets import KNOWN_SECRETS

__all__ = ["THIRD_PARTY_LOGGERS", "SecretScan", "exception_texts"]

#: Loggers of libraries quotaguard does not control; their findings are listed, not fatal.
THIRD_PARTY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "braket", "qiskit")


class SecretScan(logging.Handler):
    """Checks each record's message, arguments and exception text for known secrets."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__(level=logging.DEBUG)
        self.secrets = tuple(s for s in secrets if s)
        self.findings: list[str] = []
        self.third_party: list[str] = []
        self.records = 0
        self.current = "(outside a test)"

    def check(self, where: str, text: str, *, third_party: bool = False) -> None:
        for secret in self.secrets:
            if secret in text:
                # Name the secret by its position, never print it again.
                shown = text.replace(secret, f"<KNOWN_SECRETS[{self.secrets.index(secret)}]>")
                shown = shown.replace("\n", " | ")[:300]
                (self.third_party if third_party else self.findings).append(f"{where}: {shown}")

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        try:
            text = record.getMessage()
        except Exception:  # a broken format string must not hide raw arguments
            text = f"{record.msg!r} % {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + "\n".join(exception_texts(record.exc_info[1]))
        if record.exc_text:
            text += "\n" + record.exc_text
        third_party = record.name.split(".")[0] in THIRD_PARTY_LOGGERS
        where = f"{self.current}: log {record.name} {record.levelname}"
        self.check(where, text, third_party=third_party)


def exception_texts(exc: BaseException) -> list[str]:
    """str() and repr() of an exception and of every cause/context it chains to."""
    out: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        out += [f"{type(current).__name__}: {current}", repr(current)]
        out += [str(note) for note in getattr(current, "__notes__", ())]
        todo += [current.__cause__, current.__context__]
        if isinstance(current, BaseExceptionGroup):
            todo += list(current.exceptions)
    return out


_scan = SecretScan(KNOWN_SECRETS)
_saved_level: int | None = None
_KEY = pytest.StashKey[SecretScan]()


def pytest_sessionstart(session: pytest.Session) -> None:
    global _saved_level
    root = logging.getLogger()
    _saved_level = root.level
    root.setLevel(logging.DEBUG)  # records below the root level never reach any handler
    root.addHandler(_scan)
    session.config.stash[_KEY] = _scan


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    _scan.current = item.nodeid
    try:
        return (yield)
    finally:
        _scan.current = "(outside a test)"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.excinfo is not None:
        text = "\n".join(exception_texts(call.excinfo.value))
        _scan.check(f"exception in {item.nodeid} ({call.when})", text)
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    root = logging.getLogger()
    root.removeHandler(_scan)
    if _saved_level is not None:
        root.setLevel(_saved_level)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if _scan.third_party and reporter is not None:
        reporter.ensure_newline()
        files = sorted({f.split("::")[0] for f in _scan.third_party})
        reporter.write_line(
            f"secrets scan: {len(_scan.third_party)} record(s) of third-party loggers "
            f"{THIRD_PARTY_LOGGERS} carried a known secret (not fatal; from {', '.join(files)})",
            yellow=True,
        )
    if not _scan.findings:
        return
    lines = [f"secrets scan: {len(_scan.findings)} known secret(s) leaked:"]
    lines += [f"  {finding}" for finding in _scan.findings[:50]]
    if reporter is not None:
        reporter.ensure_newline()
    for line in lines:
        if reporter is not None:
            reporter.write_line(line, red=True, bold=True)
        else:  # pragma: no cover - the terminal reporter is always there in a normal run
            print(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
