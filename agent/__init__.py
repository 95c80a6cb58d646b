"""keywire device agent."""
