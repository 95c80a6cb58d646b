"""keywire host CLI."""
