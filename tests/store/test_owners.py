"""`store.owners`: lease owner names, and telling a crashed local owner from a live one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from jupyter_deepresearch.extension.store.owners import new_owner_id, owner_gone, owner_id


def test_owner_names_say_host_and_pid_and_differ() -> None:
    one, two = new_owner_id(), new_owner_id()
    assert one != two
    host, pid = one.split(":")[:2]
    assert host == socket.gethostname() and pid == str(os.getpid())


def test_an_owner_that_exited_on_this_host_is_gone_and_a_live_one_is_not() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from jupyter_deepresearch.extension.store.owners import "
            "new_owner_id; print(new_owner_id())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert owner_gone(done.stdout.strip())  # that process has exited
    assert not owner_gone(new_owner_id())  # this process: cannot tell, so never "gone"
    assert not owner_gone("other-host:1:nonce:1")  # another host: its lease lapses as usual
    assert not owner_gone("garbage")
    assert owner_id("n").split(":")[2] == "n"
