"""A simulated OpenAI-compatible upstream for tests and benchmarks (see `app` for the x-sim-* headers)."""

from spendgate.simulator.app import SimulatorConfig, base_url, create_app, run_simulator, start_simulator
from spendgate.simulator.faults import (
    HEADER_CUT_AFTER,
    HEADER_DELAY_MS,
    HEADER_FIRST_BYTE_MS,
    HEADER_OUTPUT_TOKENS,
    HEADER_STATUS,
)

__all__ = [
    "HEADER_CUT_AFTER",
    "HEADER_DELAY_MS",
    "HEADER_FIRST_BYTE_MS",
    "HEADER_OUTPUT_TOKENS",
    "HEADER_STATUS",
    "SimulatorConfig",
    "base_url",
    "create_app",
    "run_simulator",
    "start_simulator",
]
