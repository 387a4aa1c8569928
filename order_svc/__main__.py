"""``python -m order_svc`` starts the order service."""

from order_svc.main import main

main()
