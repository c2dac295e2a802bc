"""The gateway's side of RabbitMQ, one job a module (bus.py puts them together)."""
