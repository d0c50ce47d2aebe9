"""A scripted IMAP server on a real loopback socket, for what a private Dovecot cannot
show: Gmail's X-GM-EXT-1 and XLIST, and rate limits (NO [LIMIT], BYE [UNAVAILABLE]).

It speaks just what the importer sends (CAPABILITY, LOGIN, LIST/XLIST, STATUS, EXAMINE,
UID FETCH, LOGOUT) with quoted arguments, one client at a time."""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class Msg:
    uid: int
    data: bytes
    flags: str = ""
    date: str = "01-Jan-2024 10:00:00 +0000"
    gm: int = 0


@dataclass
class Folder:
    attrs: str
    messages: list[Msg] = field(default_factory=list)
    uidvalidity: int = 7


@dataclass
class Failure:
    """Answer the ``nth`` command whose text contains ``match`` with ``reply`` (a
    tagged NO, or a BYE that closes the connection)."""

    match: str
    reply: str
    times: int = 1


class FakeImap:
    def __init__(self, folders: dict[str, Folder], caps: str, password: str = "pw") -> None:
        self.folders = folders
        self.caps = caps
        self.password = password
        self.failures: list[Failure] = []
        self.commands: list[str] = []
        self.logins = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                self._session(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def _session(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        conn.sendall(b"* OK [CAPABILITY " + self.caps.encode() + b"] fake ready\r\n")
        selected: Folder | None = None
        while True:
            line = f.readline()
            if not line:
                return
            text = line.decode().rstrip("\r\n")
            self.commands.append(text)
            tag, _, rest = text.partition(" ")
            cmd = rest.split(" ", 1)[0].upper()
            args = rest[len(cmd) + 1 :]
            failure = next((x for x in self.failures if x.times and x.match in text), None)
            if failure is not None:
                failure.times -= 1
                if failure.reply.startswith("* BYE"):
                    conn.sendall(failure.reply.encode() + b"\r\n")
                    return
                conn.sendall(f"{tag} {failure.reply}\r\n".encode())
                continue
            out = b""
            if cmd == "CAPABILITY":
                out = b"* CAPABILITY " + self.caps.encode() + b"\r\n"
            elif cmd == "LOGIN":
                if not args.endswith(f'"{self.password}"') and not args.endswith(
                    f" {self.password}"
                ):
                    conn.sendall(
                        f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n".encode()
                    )
                    continue
                self.logins += 1
            elif cmd in ("LIST", "XLIST"):
                for name, folder in self.folders.items():
                    out += f'* {cmd} ({folder.attrs}) "/" "{name}"\r\n'.encode()
            elif cmd == "STATUS":
                name = re.match(r'"([^"]*)"', args)
                assert name
                n = len(self.folders[name.group(1)].messages)
                out = f'* STATUS "{name.group(1)}" (MESSAGES {n})\r\n'.encode()
            elif cmd == "EXAMINE":
                name = re.match(r'"([^"]*)"', args)
                if name is None or name.group(1) not in self.folders:
                    conn.sendall(f"{tag} NO Mailbox doesn't exist\r\n".encode())
                    continue
                selected = self.folders[name.group(1)]
                nxt = max((m.uid for m in selected.messages), default=0) + 1
                out = (
                    f"* {len(selected.messages)} EXISTS\r\n"
                    f"* OK [UIDVALIDITY {selected.uidvalidity}] UIDs valid\r\n"
                    f"* OK [UIDNEXT {nxt}] next\r\n"
                ).encode()
            elif cmd == "UID" and selected is not None:
                out = self._fetch(selected, args)
            elif cmd == "LOGOUT":
                conn.sendall(b"* BYE bye\r\n" + f"{tag} OK done\r\n".encode())
                return
            conn.sendall(out + f"{tag} OK {cmd} done\r\n".encode())

    @staticmethod
    def _fetch(folder: Folder, args: str) -> bytes:
        _, uidset, items = args.split(" ", 2)
        top = max((m.uid for m in folder.messages), default=0)
        wanted: set[int] = set()
        for part in uidset.split(","):
            lo, _, hi = part.partition(":")
            a = top if lo == "*" else int(lo)
            b = a if not hi else top if hi == "*" else int(hi)
            wanted.update(range(min(a, b), max(a, b) + 1))
        out = b""
        for seq, m in enumerate(folder.messages, 1):
            if m.uid not in wanted:
                continue
            if "BODY.PEEK[]" in items:
                out += f"* {seq} FETCH (UID {m.uid} BODY[] {{{len(m.data)}}}\r\n".encode()
                out += m.data + b")\r\n"
                continue
            head = m.data.split(b"\r\n\r\n")[0]
            mid = [h for h in head.split(b"\r\n") if h.lower().startswith(b"message-id")]
            hdr = (mid[0] + b"\r\n" if mid else b"") + b"\r\n"
            gm = f" X-GM-MSGID {m.gm}" if "X-GM-MSGID" in items else ""
            out += (
                f"* {seq} FETCH (UID {m.uid} RFC822.SIZE {len(m.data)} FLAGS ({m.flags}) "
                f'INTERNALDATE "{m.date}"{gm} BODY[HEADER.FIELDS (MESSAGE-ID)] {{{len(hdr)}}}\r\n'
            ).encode()
            out += hdr + b")\r\n"
        return out
