"""Who holds a lease: owner names, and whether an owner is a process that is gone.

Public because every part that takes leases needs it: the task manager names itself with
`new_owner_id`, and each store backend asks `owner_gone` to hand a crashed server's tasks back
at once instead of waiting for its leases to lapse.
"""

from __future__ import annotations

import os
import socket
import uuid


def new_owner_id() -> str:
    """A name for one manager's leases: host and pid for people, a nonce for uniqueness."""
    return owner_id(uuid.uuid4().hex[:8])


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
    except OSError:
        return ""  # not Linux: the shortcut below is off


def owner_id(nonce: str) -> str:
    """A lease owner name: `host:pid:nonce:pid-namespace` (people read host and pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{nonce}:{_pid_namespace()}"


def owner_gone(owner: str) -> bool:
    """Whether a lease owner is a process of this host and pid namespace that no longer runs.

    Lets a server restarted after a crash take its own tasks back at once instead of waiting for
    the lease to lapse. Only ever says "gone" for certain: other hosts, other pid namespaces
    (containers sharing a host name), and a pid that was reused count as alive, and the lease
    then lapses as usual.
    """
    parts = owner.split(":")
    if len(parts) != 4 or not parts[1].isdigit():
        return False
    host, pid_text, _, namespace = parts
    if host != socket.gethostname() or not namespace or namespace != _pid_namespace():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        # This process (another manager in it, or an earlier container incarnation with the
        # same pid, e.g. pid 1): cannot tell, so the lease lapses as usual.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by another user
    return False
