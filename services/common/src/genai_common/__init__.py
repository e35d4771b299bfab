"""Infrastructure shared by every genai service: settings, logging, metrics, lifecycle, gRPC, AMQP.

Nothing here knows about a service's domain.
"""
