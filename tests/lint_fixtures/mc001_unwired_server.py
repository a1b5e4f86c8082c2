import grpc
import grpc.aio
from concurrent import futures
from grpc import aio as grpc_aio

import memcontract.interceptors as mci
from memcontract.interceptors import aio_server_interceptor, server_interceptor, wrap_server

guard = object()
pool = futures.ThreadPoolExecutor(2)


def bare():
    return grpc.server(pool)  # expect: MC001


def direct():
    return grpc.server(pool, interceptors=[server_interceptor(guard)])


def positional():
    return grpc.server(pool, None, [server_interceptor(guard)])


def through_module_alias():
    return grpc.server(pool, interceptors=(mci.server_interceptor(guard),))


def variable():
    interceptors = [server_interceptor(guard)]
    return grpc.server(pool, interceptors=interceptors)


def appended():
    interceptors = []
    interceptors.append(server_interceptor(guard))
    return grpc.server(pool, interceptors=interceptors)


def unpacked():
    base = [server_interceptor(guard)]
    return grpc.server(pool, interceptors=[*base, object()])


def interceptor_in_a_variable():
    mc = server_interceptor(guard)
    return grpc.server(pool, interceptors=[mc])


def list_without_memcontract():
    interceptors = [object()]
    interceptors += [object()]
    return grpc.server(pool, interceptors=interceptors)  # expect: MC001


MODULE_INTERCEPTORS = [server_interceptor(guard)]


def module_level_list():
    return grpc.server(pool, interceptors=MODULE_INTERCEPTORS)


def wrapped_inline():
    return wrap_server(grpc.server(pool), guard)


def wrapped_later():
    server = grpc.server(pool)
    server = wrap_server(server, guard)
    return server


def wrapper_discarded():
    server = grpc.server(pool)  # expect: MC001
    wrap_server(server, guard)
    return server


def services_added_to_the_raw_server():
    raw = grpc.server(pool)  # expect: MC001
    wrapped = wrap_server(raw, guard)
    add_ThingServicer_to_server(object(), raw)  # noqa: F821
    return wrapped


def services_added_before_wrapping():
    server = grpc.server(pool)  # expect: MC001
    add_ThingServicer_to_server(object(), server)  # noqa: F821
    server = wrap_server(server, guard)
    return server


def handlers_added_before_wrapping():
    server = grpc.server(pool)  # expect: MC001
    server.add_generic_rpc_handlers(())
    server = wrap_server(server, guard)
    return server


def services_added_after_wrapping():
    server = grpc.server(pool)
    server = wrap_server(server, guard)
    add_ThingServicer_to_server(object(), server)  # noqa: F821
    server.add_generic_rpc_handlers(())
    return server


def handlers_added_to_the_raw_server():
    raw = grpc.server(pool)  # expect: MC001
    wrapped = wrap_server(raw, guard)
    raw.add_generic_rpc_handlers(())
    return wrapped


class Holder:
    def __init__(self):
        self.server = grpc.server(pool)

    def start(self):
        self.server = wrap_server(self.server, guard)


async def aio_wired():
    return grpc.aio.server(interceptors=[aio_server_interceptor(guard)])


async def aio_wrapped():
    return wrap_server(grpc.aio.server(), guard)


async def aio_through_from_import():
    return grpc_aio.server()  # expect: MC001


async def aio_with_the_sync_interceptor():
    return grpc.aio.server(interceptors=[server_interceptor(guard)])  # expect: MC001


def sync_with_the_aio_interceptor():
    return grpc.server(pool, interceptors=[aio_server_interceptor(guard)])  # expect: MC001


# Interceptors from where the check cannot see: not reported.


def from_a_parameter(interceptors):
    return grpc.server(pool, interceptors=interceptors)


def from_kwargs(**kwargs):
    return grpc.server(pool, **kwargs)


def from_a_call():
    return grpc.server(pool, interceptors=make_interceptors())  # noqa: F821


# Look-alikes: not grpc's server.


class other:
    @staticmethod
    def server(*args):
        return None


def look_alikes():
    other.server(pool)
    server = lambda *args: None  # noqa: E731
    server(pool)
