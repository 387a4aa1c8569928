"""The event bus: one NATS connection, the JetStream streams, and publishing with dedup ids."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping, Sequence

import nats
import nats.errors
import nats.js.errors
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext, api
from pydantic import SecretStr
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from chassis.consumer import Consumer
from chassis.delivery import (
    DEAD_LETTER_STREAM,
    DEAD_LETTER_SUBJECTS,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    MSG_ID_HEADER,
    Delivery,
    Dispatch,
)
from chassis.logging import get_logger
from chassis.routing import StreamSpec, durable_name, stream_of, subjects_of

__all__ = ["Bus", "Outgoing", "declare_streams", "inbox_prefix", "redact_url", "stream_config"]

log = get_logger(__name__)

DUPLICATE_WINDOW_SECONDS = 120.0
STREAM_MAX_AGE_SECONDS = 7 * 24 * 3600.0

#: ``(subject, payload, event_id, event_type)`` of one message to publish.
Outgoing = tuple[str, bytes, str, str]


def inbox_prefix(user: str | None) -> str:
    """The reply subjects a NATS user gets (``_INBOX_<user>``; ``_INBOX`` without a user).

    Pulled messages and JetStream replies arrive on these inboxes, so each user may subscribe to
    its own prefix only: no service can read another's deliveries by subscribing to ``_INBOX.>``.
    """
    return f"_INBOX_{user}" if user else "_INBOX"


def redact_url(url: str) -> str:
    """``url`` without a password it may carry (``nats://user:***@host``), fit for a log line."""
    return re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", url)


def stream_config(stream: StreamSpec, replicas: int = 1) -> api.StreamConfig:
    """A stream as this system runs it: file storage, a dedup window; event streams keep 7 days.

    Dead letters never expire: they wait for a person to inspect and replay them. On a JetStream
    cluster ``replicas`` (e.g. 3) keeps every stream on that many servers, so losing one loses nothing.
    """
    return api.StreamConfig(
        name=stream.name,
        subjects=list(stream.subjects),
        storage=api.StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_age=0 if stream.name == DEAD_LETTER_STREAM else STREAM_MAX_AGE_SECONDS,
        num_replicas=replicas,
    )


def server_urls(url: str) -> list[str]:
    """``NATS_URL`` as a list: one URL, or several separated by commas (the servers of a cluster)."""
    return [part.strip() for part in url.split(",") if part.strip()]


async def declare_streams(js: JetStreamContext, streams: Sequence[StreamSpec], replicas: int = 1) -> None:
    """Create each stream, or update it when it exists with another configuration."""
    for stream in streams:
        config = stream_config(stream, replicas)
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await js.update_stream(config)


class Bus:
    """One NATS connection with JetStream; connects with retries so a service may start before NATS.

    ``streams`` are the event streams this service publishes to or consumes from (declared in the
    contracts, see ``chassis.routing``); the dead-letter stream is always declared too, but only
    with ``declare_streams``: a service with its own least-privilege ``user`` may not create
    streams (a bootstrap identity does, see ``devstack.natsauth``) and only uses them.
    """

    def __init__(
        self,
        url: str,
        name: str,
        streams: Sequence[StreamSpec] = (),
        *,
        user: str | None = None,
        password: SecretStr | None = None,
        declare_streams: bool = True,
    ) -> None:
        self._url = url
        self._name = name
        self._user = user
        self._password = password
        self._declare_streams = declare_streams
        self._streams = [*dict.fromkeys(streams), StreamSpec(DEAD_LETTER_STREAM, DEAD_LETTER_SUBJECTS)]
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self.connected = asyncio.Event()

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("bus is not connected")
        return self._js

    @property
    def nc(self) -> NatsClient:
        if self._nc is None:
            raise RuntimeError("bus is not connected")
        return self._nc

    async def connect(self) -> None:
        """Connect (retrying until NATS answers) and, with ``declare_streams``, declare the streams."""
        url = redact_url(self._url)
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.1, max=2.0),
            retry=retry_if_exception_type((OSError, nats.errors.Error, asyncio.TimeoutError)),
            before_sleep=lambda state: log.warning(
                "nats not reachable, retrying",
                url=url,
                error=repr(state.outcome.exception()) if state.outcome is not None else None,
            ),
        ):
            with attempt:
                self._nc = await nats.connect(
                    server_urls(self._url),
                    name=self._name,
                    user=self._user or None,
                    password=self._password.get_secret_value() if self._password is not None else None,
                    inbox_prefix=inbox_prefix(self._user),
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
        self._js = self.nc.jetstream()
        if self._declare_streams:
            try:
                await self.ensure_streams()
            except Exception as error:  # e.g. no right to: the streams are someone else's to declare
                log.warning("cannot declare streams", error=repr(error))
        self.connected.set()
        log.info("nats connected", url=url, user=self._user, declares_streams=self._declare_streams)

    async def _on_error(self, error: Exception) -> None:
        """Errors the server reports asynchronously, e.g. a permissions violation (with its reason)."""
        log.warning("nats error", error=repr(error))

    async def _on_disconnected(self) -> None:
        log.warning("nats disconnected")

    async def _on_reconnected(self) -> None:
        log.info("nats reconnected")
        if not self._declare_streams:
            return
        try:  # a server that lost its store comes back without streams: declare them again
            await self.ensure_streams()
        except Exception as error:
            log.warning("cannot declare streams after reconnect", error=repr(error))

    async def wait_connected(self, stop: asyncio.Event) -> bool:
        """Wait until connected (True) or until ``stop`` is set (False), whichever comes first."""
        waiters = [asyncio.ensure_future(self.connected.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return self.connected.is_set() and not stop.is_set()

    async def ensure_streams(self) -> None:
        """Create or update every stream this service uses (see ``stream_config``)."""
        await declare_streams(self.js, self._streams)

    async def publish_all(
        self,
        messages: Sequence[Outgoing],
        timeout: float = 5.0,
        *,
        headers: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        """Publish ``(subject, payload, event_id, event_type)`` messages at once and wait for every PubAck.

        The messages go out back to back and their acks are awaited together (no round trip
        each); any error or a missing ack raises, and the caller may publish them all again:
        JetStream drops the repeats by their ``Nats-Msg-Id``. ``headers``, one mapping per message,
        adds headers of its own (e.g. the trace context).
        """
        if not messages:
            return
        if headers is None:
            futures = [
                await self.js.publish_async(
                    subject,
                    payload,
                    headers={MSG_ID_HEADER: event_id, EVENT_ID_HEADER: event_id, EVENT_TYPE_HEADER: event_type},
                )
                for subject, payload, event_id, event_type in messages
            ]
        else:
            futures = [
                await self.js.publish_async(
                    subject,
                    payload,
                    headers={
                        **extra,
                        MSG_ID_HEADER: event_id,
                        EVENT_ID_HEADER: event_id,
                        EVENT_TYPE_HEADER: event_type,
                    },
                )
                for (subject, payload, event_id, event_type), extra in zip(messages, headers, strict=True)
            ]
        done, pending = await asyncio.wait(futures, timeout=timeout)
        for future in pending:
            future.cancel()
        if pending:
            raise nats.errors.TimeoutError(f"{len(pending)} of {len(messages)} publishes were not acknowledged")
        for future in done:
            future.result()  # raises the publish's error, if any

    def declare(self, *events: type[Message]) -> None:
        """Declare the streams these events travel on (call before ``connect``; consumers declare theirs)."""
        for event in events:
            self._add_stream(stream_of(event))

    def _add_stream(self, stream: StreamSpec) -> None:
        if stream not in self._streams:
            self._streams.insert(len(self._streams) - 1, stream)

    def consumer(
        self,
        *,
        handler: Dispatch,
        durable: str | None = None,
        max_deliver: int = 5,
        max_in_flight: int = 128,
        ack_wait: float = 30.0,
    ) -> Consumer:
        """A durable pull consumer, shared by replicas, of the events ``handler`` takes (one stream).

        Its name is ``durable``, by default ``<service>-<stream>`` (``chassis.routing.durable_name``,
        e.g. ``order-svc-payments``): the name the service's NATS permissions grant it. A message not
        acknowledged within ``ack_wait`` seconds (e.g. its replica froze) is redelivered, to any replica.
        """
        stream, subjects = subjects_of(handler.events)
        self._add_stream(stream)
        durable = durable or durable_name(self._name, stream)
        delivery = Delivery(lambda: self.js, stream.name, durable, handler, max_deliver)
        return Consumer(self, stream.name, durable, subjects, delivery, max_in_flight, ack_wait)

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.flush(timeout=2)
            await self._nc.close()
