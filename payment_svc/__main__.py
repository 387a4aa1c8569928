"""``python -m payment_svc`` starts the payment service."""

from payment_svc.main import main

main()
