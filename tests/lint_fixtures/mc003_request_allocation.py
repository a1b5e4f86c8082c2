import os

import grpc
import numpy as np

from . import pb_grpc

MAX_ROWS = 1000


class Inventory(pb_grpc.InventoryServicer):
    def Get(self, request, context):
        bytearray(request.size)  # expect: MC003
        bytes(request.size)  # expect: MC003
        _ = [0] * request.count  # expect: MC003
        _ = b"\0" * len(request.items)  # expect: MC003
        n = request.count * 2
        list(range(n))  # expect: MC003
        _ = [i for i in range(n)]  # expect: MC003
        _ = {i: i for i in range(1, n)}  # expect: MC003
        "x".ljust(n)  # expect: MC003
        os.urandom(n)  # expect: MC003
        np.zeros(n)  # expect: MC003
        tuple(x for x in range(n))  # expect: MC003
        open("f").read()  # expect: MC003
        context.stream.read(-1)  # expect: MC003
        context.stream.read(n)  # expect: MC003
        rows, chunk = request.rows, request.chunk
        _ = [None] * rows  # expect: MC003
        if (m := request.count) > 0:
            _ = "-" * m  # expect: MC003
        # bounded, constant, or not from the request: not reported
        bounded = min(request.count, MAX_ROWS)
        _ = [0] * bounded
        _ = bytearray(min(n, 4096))
        _ = bytearray(min(n, self.limit))
        _ = bytearray(min(n, request.other))  # expect: MC003
        _ = bytearray(1024)
        _ = [0] * self.size
        _ = list(range(10))
        _ = request.count * 3
        _ = request.payload * 3
        open("f").read(4096)
        return None

    def Checked(self, request, context):
        n = request.count
        if n > MAX_ROWS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "too many rows")
        _ = [0] * n
        if not 0 < request.size <= MAX_ROWS:
            return None
        bytearray(request.size)
        if request.width <= 0 or request.width >= MAX_ROWS:
            raise ValueError("width")
        "x".ljust(request.width)
        # checks that do not bound from above, or against request data: still reported
        if request.depth < 0:
            return None
        bytearray(request.depth)  # expect: MC003
        if request.other > request.limit:
            return None
        bytearray(request.other)  # expect: MC003
        if request.a > MAX_ROWS and request.b:
            return None
        bytearray(request.a)  # expect: MC003
        if request.c > MAX_ROWS:
            log(request.c)  # noqa: F821
        bytearray(request.c)  # expect: MC003
        return None

    async def AioChecked(self, request, context):
        if request.n >= MAX_ROWS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "too many")
        return bytearray(request.n)

    def Upload(self, request_iterator, context):
        for req in request_iterator:
            bytearray(req.size)  # expect: MC003
        return None

    def Nested(self, request, context):
        def inner():
            return bytearray(request.size)  # expect: MC003

        return inner

    def _helper(self, request, context):
        return bytearray(request.size)  # private: not a servicer method

    def two_params(self, request):
        return bytearray(request.size)  # not shaped like a handler


class AioInventory(pb_grpc.InventoryServicer):
    async def Stream(self, request, context):
        async for item in fetch(request):  # noqa: F821
            yield bytes(item.size)  # expect: MC003


class ReportServicer:
    def Report(self, request, context):
        return [0] * request.rows  # expect: MC003


# Look-alikes: not servicers.


class NotAService:
    def Get(self, request, context):
        return bytearray(request.size)


def Get(request, context):
    return bytearray(request.size)
