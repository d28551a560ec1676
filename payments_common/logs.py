"""JSON log lines on stderr; one line per RPC comes from the interceptor.

With tracing on (`tracing.py`), a line written while a span is active carries its `trace_id` and
`span_id` (lower-case hex, as in a W3C `traceparent`), so a log search finds a trace and back.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import sys
import time
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

BATCH_SECONDS = 0.005  # how long a log line may wait for others to be written with it
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Render a record and its `extra` fields as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class _Batches(logging.handlers.QueueListener):
    """The writer thread: waits for a line, lets more arrive for `BATCH_SECONDS`, then formats and
    writes them all with one write and one flush.

    Waking for every line cost the serving thread more than the line itself under load (a wake-up
    per record, and the writer taking the GIL from it a thousand times a second); a line now waits
    at most `BATCH_SECONDS` to be written.
    """

    def __init__(self, lines: queue.SimpleQueue[Any], writer: logging.StreamHandler[Any]):
        super().__init__(lines, writer)
        self._lines, self._writer = lines, writer

    def _monitor(self) -> None:
        lines = self._lines
        while True:
            first = lines.get()
            if first is None:  # QueueListener.stop() enqueues None
                return
            time.sleep(BATCH_SECONDS)
            batch, done = [first], False
            while not done:
                try:
                    record = lines.get_nowait()
                except queue.Empty:
                    break
                done = record is None
                if not done:
                    batch.append(record)
            self._write(batch)
            if done:
                return

    def _write(self, batch: list[logging.LogRecord]) -> None:
        writer, formatter = self._writer, self._writer.formatter or JsonFormatter()
        text = "".join(formatter.format(record) + "\n" for record in batch)
        try:
            writer.stream.write(text)
            writer.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nothing to write to
            pass


class _Enqueue(logging.handlers.QueueHandler):
    """Hands the record to the writer thread as it is: formatting and the write to stderr happen
    there, off the event loop (the records carry only plain `extra` values, and a traceback is
    rendered by the formatter from `exc_info`, which stays on the record)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def configure(level: str, service: str) -> None:
    """Send JSON lines to stderr at `level`, tagged with the service name, from a writer thread.

    The lines never show the caller's file and line, thread or process, so the logging module is
    told not to collect them (the "Optimization" switches of the logging HOWTO): finding the
    caller's frame alone was a measurable share of every RPC's access-log line.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(JsonFormatter())
    lines: queue.SimpleQueue[Any] = queue.SimpleQueue()
    listener = _Batches(lines, writer)
    listener.start()
    atexit.register(listener.stop)  # every line queued before exit is written
    handler = _Enqueue(lines)
    old_factory = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = old_factory(*args, **kwargs)
        record.service = service
        return record

    logging.setLogRecordFactory(factory)
    logging.basicConfig(level=level, handlers=[handler], force=True)


def record_trace_ids() -> None:
    """From now on, tag each record made while a span is active with its trace and span ids.

    The ids are read where the record is made: the line is formatted later, on the writer thread,
    outside the call's context. Installed only when tracing is on, so that logging costs nothing
    more without it; installing it twice changes nothing.
    """
    made = logging.getLogRecordFactory()
    if getattr(made, "tags_trace_ids", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = made(*args, **kwargs)
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = format(span.trace_id, "032x")
            record.span_id = format(span.span_id, "016x")
        return record

    factory.tags_trace_ids = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
