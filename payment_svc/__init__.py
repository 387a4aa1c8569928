"""payment_svc: charges each created order once through a mock provider and publishes the outcome."""
