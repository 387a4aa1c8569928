"""How the bus reads NATS_URL and configures streams for one server or a cluster."""

from __future__ import annotations

from chassis.bus import server_urls, stream_config
from chassis.routing import StreamSpec


def test_a_list_of_servers_in_nats_url_reaches_every_node_of_a_cluster() -> None:
    assert server_urls("nats://a:4222, nats://b:4222,nats://c:4222") == [
        "nats://a:4222",
        "nats://b:4222",
        "nats://c:4222",
    ]
    assert server_urls("nats://127.0.0.1:4222") == ["nats://127.0.0.1:4222"]


def test_streams_keep_one_copy_by_default_and_as_many_as_asked_on_a_cluster() -> None:
    stream = StreamSpec("ORDERS", ("orders.>",))
    assert stream_config(stream).num_replicas == 1
    assert stream_config(stream, replicas=3).num_replicas == 3
