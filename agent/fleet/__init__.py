"""The fleet over MQTT: typed messages, topics, event spool, signed model push, telemetry.

The broker (mosquitto, EMQX, HiveMQ, AWS IoT Core) is the distributed engine; this package
only speaks to it. See docs/FLEET.md for the topic layout, message schemas and security.
"""
