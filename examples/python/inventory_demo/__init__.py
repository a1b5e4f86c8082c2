"""Generated code of the example's proto (``inventory_demo.v1``); see ``genproto.py``."""
