"""Run a command and write the kernel's high-water mark of its resident memory.

    python -S peak.py RESULT.json -- CMD ARGS...

A child forked from a large process (the harness has torch loaded) counts the parent's
resident pages as its own until it execs, and ru_maxrss keeps that; forked from this small
launcher instead, ru_maxrss is the command's own peak. Stdlib only; exits with CMD's status.
"""
import json
import os
import sys


def main() -> None:
    result, sep, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
    assert sep == "--" and cmd, "usage: peak.py RESULT.json -- CMD ARGS..."
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    with open(result, "w") as out:
        json.dump({"maxrss_kb": usage.ru_maxrss, "exit": code}, out)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
