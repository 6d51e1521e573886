"""The shared core: what every omnicdp process uses, written once.

Domain errors (``errors``) and their one mapping to gRPC statuses and back (``status``), the
contract's vocabulary (``vocabulary``), protobuf conversions (``protoconv``), page tokens
(``paging``), typed settings (``settings``), OpenTelemetry set-up (``telemetry``), the gRPC
server bootstrap and ``serve`` (``server``) and client channels with deadlines
(``channels``). It imports the generated API and nothing above it.
"""
