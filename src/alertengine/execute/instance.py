"""Who holds an execution lease, and whether that holder is known to be dead.

An execution lease names its holder's *process instance*: the replica (a stable name, kept
across restarts: ``ALERTENGINE_REPLICA_ID``, e.g. a StatefulSet pod name or a systemd unit),
a random id drawn once per process, and where the process runs (host, boot id, pid
namespace, pid and the pid's start time). With that a new process can tell, without waiting
for the lease to lapse, that the holder is gone:

* the same replica restarted: the holder names our replica but another instance (a replica
  id is run by one process at a time, the operator's promise when they set it);
* the holder ran on this machine, in this boot and pid namespace, and its pid is gone, a
  zombie, or now belongs to a process started at another time (pids are reused).

Anything else (another machine, no ``/proc``) cannot be judged from here: the holder renews
its lease every few seconds while it runs (its heartbeat), so a dead one's lease lapses
within :data:`~alertengine.execute.executor.EXEC_LEASE_TTL_S` and is then free.

Everything but :func:`probe_process` and :meth:`Instance.current` is pure.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

REPLICA_ENV = "ALERTENGINE_REPLICA_ID"

#: (state letter, start time in clock ticks since boot) of a pid, or None when there is none.
ProcessInfo = tuple[str, int]
Probe = Callable[[int], "ProcessInfo | None"]

_UNSAFE = re.compile(r"[;=\s]")


def _clean(value: str) -> str:
    return _UNSAFE.sub("_", value)[:120]


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def probe_process(pid: int) -> ProcessInfo | None:
    """Linux: the pid's state and start time from ``/proc/<pid>/stat``; None if no such pid."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ("?", -1)  # cannot read it: treat as alive (never take over on a guess)
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) ", comm may hold spaces
    return fields[0], int(fields[19])  # field 3 is the state, field 22 the start time


@dataclass(frozen=True, slots=True)
class Instance:
    replica: str
    instance: str
    host: str
    boot: str
    pidns: str
    pid: int
    start: int
    run: str = ""  # one name per execution run: tasks of one process exclude each other too

    @classmethod
    def current(cls, environ: Mapping[str, str] | None = None, *, replica: str = "") -> Instance:
        """This process. ``replica`` (or ``ALERTENGINE_REPLICA_ID``) names it across restarts."""
        env = os.environ if environ is None else environ
        pid = os.getpid()
        me = probe_process(pid)
        try:
            pidns = os.readlink("/proc/self/ns/pid")
        except OSError:
            pidns = ""
        return cls(
            replica=_clean(replica or env.get(REPLICA_ENV, "")),
            instance=secrets.token_hex(6),
            host=_clean(socket.gethostname()),
            boot=_clean(_read("/proc/sys/kernel/random/boot_id")),
            pidns=_clean(pidns),
            pid=pid,
            start=me[1] if me is not None else -1,
        )

    @classmethod
    def named(cls, name: str) -> Instance:
        """A fixed instance for a world without processes (the simulator): deterministic."""
        return cls(replica=name, instance=name, host=name, boot="", pidns="", pid=0, start=0)

    def for_run(self) -> Instance:
        return replace(self, run=secrets.token_hex(4))

    def same_process(self, other: Instance) -> bool:
        return self.instance == other.instance

    def __str__(self) -> str:
        fields = {
            "r": self.replica, "i": self.instance, "h": self.host, "b": self.boot,
            "n": self.pidns, "p": str(self.pid), "s": str(self.start), "run": self.run,
        }  # fmt: skip
        return ";".join(f"{k}={v}" for k, v in fields.items())

    @classmethod
    def parse(cls, text: str) -> Instance | None:
        """The instance a lease holder string names; None for any other holder string."""
        try:
            f = dict(part.split("=", 1) for part in text.split(";"))
            return cls(
                replica=f["r"], instance=f["i"], host=f["h"], boot=f["b"], pidns=f["n"],
                pid=int(f["p"]), start=int(f["s"]), run=f.get("run", ""),
            )  # fmt: skip
        except (KeyError, ValueError):
            return None

    def describe(self) -> str:
        """Short, for logs and the ledger: ``replica`` or ``host``, pid and instance id."""
        return f"{self.replica or self.host}:{self.pid}/{self.instance}"


def known_dead(holder: Instance, me: Instance, probe: Probe = probe_process) -> str | None:
    """Why ``holder`` is certainly not running any more, or None when it may be alive."""
    if holder.same_process(me):
        return None  # another run of this very process: alive
    if me.replica and holder.replica == me.replica:
        return (
            f"replica {me.replica} restarted: instance {holder.instance} was replaced by "
            f"{me.instance}"
        )
    same_machine = (
        holder.host == me.host
        and bool(holder.boot)
        and holder.boot == me.boot
        and bool(holder.pidns)
        and holder.pidns == me.pidns
    )
    if not same_machine:
        return None
    seen = probe(holder.pid)
    if seen is None:
        return f"process {holder.pid} on {holder.host} is gone"
    state, start = seen
    if state in ("Z", "X"):
        return f"process {holder.pid} on {holder.host} has exited"
    if start >= 0 and holder.start >= 0 and start != holder.start:
        return f"process {holder.pid} on {holder.host} is gone (its pid was reused)"
    return None
