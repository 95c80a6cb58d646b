"""The fleet fixtures (real broker, real agent processes) for the real-broker fuzz round."""
from tests.fleet.conftest import fleet_models, keys, observe, start_agent  # noqa: F401
