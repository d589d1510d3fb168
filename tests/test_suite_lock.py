"""The suite's own lock (tests/conftest.py): tests that measure run alone, the others side by side, and
a test waiting to run alone is not starved by the shared holders that keep coming."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import SUITE_LOCK, _suite_lock

pytest.importorskip("fcntl")


def _enter(alone: bool, entered: list[str], name: str, leave: threading.Event) -> threading.Thread:
    def hold():
        with _suite_lock(alone=alone):
            entered.append(name)
            leave.wait(10)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


def test_an_alone_test_waits_for_the_shared_ones_and_holds_off_those_after_it(tmp_path, monkeypatch):
    monkeypatch.setenv(SUITE_LOCK, str(tmp_path))  # a lock of this test's own, not the running suite's
    entered: list[str] = []
    first_leaves, alone_leaves, later_leaves = threading.Event(), threading.Event(), threading.Event()
    first = _enter(False, entered, "first shared", first_leaves)
    second = _enter(False, entered, "second shared", later_leaves)
    time.sleep(0.2)
    assert sorted(entered) == ["first shared", "second shared"]  # shared holders side by side

    alone = _enter(True, entered, "alone", alone_leaves)
    time.sleep(0.2)
    later = _enter(False, entered, "later shared", later_leaves)
    time.sleep(0.2)
    assert "alone" not in entered and "later shared" not in entered  # it waits; the later one waits behind it

    first_leaves.set()
    later_leaves.set()  # the second shared holder goes too: now the alone test runs, and only it
    first.join(5)
    second.join(5)
    time.sleep(0.2)
    assert entered[2:] == ["alone"]

    alone_leaves.set()
    alone.join(5)
    later.join(5)
    assert entered[2:] == ["alone", "later shared"]
