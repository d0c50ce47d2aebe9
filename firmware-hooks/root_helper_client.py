#!/usr/bin/python3
"""Talk to the socket-activated root helper with the helper's own stdin/stdout contract.

Installed as /usr/lib/pillarbox/root-helper-client. The web UI runs hardened
(NoNewPrivileges, no setuid), so it cannot use sudo; instead systemd listens on
/run/pillarbox-root-helper.sock (group pillarbox-web, mode 0660) and starts one
root_helper.py as root per connection, the connection being its stdin and stdout.

This client copies its stdin (one JSON request) to the socket, closes the sending half
so the helper sees end of input, and copies the helper's answer to stdout. The web UI
runs it exactly as it would run the helper itself.
"""

from __future__ import annotations

import json
import os
import socket
import sys

SOCKET = os.environ.get("PILLARBOX_ROOT_HELPER_SOCKET", "/run/pillarbox-root-helper.sock")
MAX_REQUEST = 1 << 20
TIMEOUT = 2 * 3600.0


def _fail(text: str) -> int:
    # Same shape as a helper refusal, so the caller shows one kind of error.
    sys.stdout.write(json.dumps({"ok": False, "error": text}) + "\n")
    return 1


def main() -> int:
    request = sys.stdin.buffer.read(MAX_REQUEST + 1)
    if len(request) > MAX_REQUEST:
        return _fail("request too large")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(SOCKET)
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                sys.stdout.buffer.write(chunk)
    except FileNotFoundError:
        return _fail("the system helper is not available (no socket)")
    except PermissionError:
        return _fail("not allowed to use the system helper")
    except OSError as exc:
        return _fail(f"the system helper could not be reached ({exc.__class__.__name__})")
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
