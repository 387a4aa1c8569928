"""``python -m orders_client``: the same as the ``orders`` command."""

from orders_client.cli import main

main()
