"""Multipart uploads written byte by byte, for tests that control what reaches the server
and when (stalls, cut-offs, hang-ups): the request head, a part's head, the closing line;
and answers read off a raw socket."""

from __future__ import annotations

import socket

BOUNDARY = "r4wb0undary"


def upload_head(key: str, length: int, boundary: str = BOUNDARY) -> bytes:
    """The head of a `POST /images` whose body is `length` bytes."""
    return (f"POST /images HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def part_head(filename: str, name: str = "file", boundary: str = BOUNDARY) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            + ("Content-Type: image/png\r\n" if filename else "") + "\r\n").encode()


def closing(boundary: str = BOUNDARY) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode()


def form(files: list[tuple[str, bytes]], fields: dict[str, str] | None = None,
         boundary: str = BOUNDARY) -> bytes:
    """A whole multipart body: the files, then the fields."""
    parts = [part_head(name, boundary=boundary) + data for name, data in files]
    parts += [part_head("", field, boundary) + value.encode()
              for field, value in (fields or {}).items()]
    return b"\r\n".join(parts) + closing(boundary)


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response off a (keep-alive) connection: status, headers (lower-case names), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole head: {data[:200]!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """Whether the server closes the connection within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
