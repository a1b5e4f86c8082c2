"""Generated from ``protos/inventory_demo/v1/inventory_demo.proto`` by ``genproto.py``."""
