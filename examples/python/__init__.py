"""The Python example of memcontract: an inventory service (sync and aio) and an order client.

Run from the repository root: ``python -m examples.python.server --port 0`` and
``python -m examples.python.client --target 127.0.0.1:PORT`` (see README.md).
"""
