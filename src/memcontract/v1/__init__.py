"""Generated code for ``memcontract/v1/memcontract.proto`` (do not edit; see tools/genproto.py)."""
