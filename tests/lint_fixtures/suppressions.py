from . import pb_grpc


class Service(pb_grpc.ServiceServicer):
    def Method(self, request, context):
        bytearray(request.n)  # memcontract: ignore[MC003] bounded by max_receive_message_length
        bytearray(request.n)  # memcontract: ignore[mc003] -- lower case and a lead work too
        # expect-next: MC902
        bytearray(request.n)  # memcontract:ignore[MC001, MC003] several codes: MC001 unused
        # expect-next: MC901
        bytearray(request.n)  # memcontract: ignore[MC003]
        # expect-next: MC902
        bytearray(10)  # memcontract: ignore[MC003] nothing to suppress here
        # expect-next: MC902
        _ = 1  # memcontract: ignore[MC999] no such code
        # expect-next: MC003 MC902
        bytearray(request.n)  # memcontract: ignore[MC001] the wrong code
        # expect-next: MC003
        bytearray(request.n); _ = "# memcontract: ignore[MC003] a string, not a comment"  # noqa: E702
        # expect-next: MC902
        _ = 1  # memcontract: ignore MC003 malformed
        # expect-next: MC902
        _ = 1  # memcontract: ignore[MC900] cannot be suppressed
