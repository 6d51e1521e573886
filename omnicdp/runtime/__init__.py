"""What every omnicdp process shares: settings, telemetry, the gRPC server bootstrap and
client channels. Written once here, used by every service."""
