"""Shared pytest setup: fixture modules under tests/fixtures/ are registered automatically."""
from __future__ import annotations

from pathlib import Path

_FIXTURES = Path(__file__).parent / "fixtures"
pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}" for p in _FIXTURES.glob("*.py") if not p.stem.startswith("_")
)
