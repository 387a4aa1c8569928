"""Log lines leave in one write per event-loop iteration, and at once when no loop runs."""

from __future__ import annotations

import asyncio
import io

from chassis.logging import _TickWriter


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_lines_logged_in_one_iteration_go_out_in_one_write_right_after_it() -> None:
    stream = CountingStream()
    writer = _TickWriter(stream)
    for i in range(3):
        writer.write_line(f"line {i}")
    assert stream.getvalue() == ""
    await asyncio.sleep(0)
    assert stream.getvalue() == "line 0\nline 1\nline 2\n"
    assert stream.writes == 1
    writer.write_line("next")
    await asyncio.sleep(0)
    assert stream.getvalue().endswith("line 2\nnext\n")


def test_without_a_running_loop_a_line_is_written_at_once() -> None:
    stream = CountingStream()
    _TickWriter(stream).write_line("now")
    assert stream.getvalue() == "now\n"
