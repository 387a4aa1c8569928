"""A minimal keep-alive HTTP/1.1 client: one connection per in-flight request, so the client costs little."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

__all__ = ["HttpError", "HttpPool"]


class HttpError(Exception):
    """The server answered with a status other than 2xx, or broke the protocol."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = -1
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            body = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                body += await self.reader.readexactly(size + 2)
                del body[-2:]
            return status, bytes(body)
        if length < 0:
            raise HttpError("response without Content-Length or chunked encoding")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


class HttpPool:
    """POSTs JSON over reused connections (opened on demand, at most one per concurrent request)."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"need an http:// URL, got {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._idle: list[_Connection] = []
        self._all: list[_Connection] = []

    async def post_json(self, path: str, body: bytes, timeout: float = 30.0, headers: bytes = b"") -> bytes:
        """The response body of a 2xx answer; HttpError otherwise. ``headers``: more lines, each ending CRLF."""
        request = (
            (
                f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            ).encode()
            + headers
            + b"\r\n"
            + body
        )
        connection = self._idle.pop() if self._idle else await self._open()
        try:
            status, data = await asyncio.wait_for(connection.exchange(request), timeout)
        except BaseException:
            connection.close()
            self._all.remove(connection)
            raise
        self._idle.append(connection)
        if not 200 <= status < 300:
            raise HttpError(f"HTTP {status}: {data[:200]!r}")
        return data

    async def _open(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self._host, self._port)
        connection = _Connection(reader, writer)
        self._all.append(connection)
        return connection

    async def close(self) -> None:
        for connection in self._all:
            connection.close()
        self._all.clear()
        self._idle.clear()
