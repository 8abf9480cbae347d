"""A tiny subreaper around ``runc exec --detach``, run as a script (stdlib only, started with
``python -I -S <this file> <runc argv…>``).

A detached ``runc exec`` exits as soon as the process runs; the process is then re-parented to the
nearest *child subreaper* among runc's ancestors, or to the host's init, and its exit status would
be lost. This script marks itself as a subreaper (``PR_SET_CHILD_SUBREAPER``), runs runc, adopts
the process when runc exits, and exits with the process's exit code (``128+n`` for a signal
``n``), or 255 when runc itself failed (its message is in runc's ``--log``). The process's own
orphans are not ours: they belong to the container's PID namespace and its init.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36
RUNC_FAILED = 255


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def main(argv: list[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        return RUNC_FAILED
    runc = subprocess.run(  # noqa: S603 - argv is built by RuncRuntime, never by a client
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    if runc.returncode != 0:
        return RUNC_FAILED
    code = RUNC_FAILED
    while True:  # the adopted process (and nothing else: runc is reaped already)
        try:
            _, status = os.wait()
        except ChildProcessError:
            return code
        code = _exit_code(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
