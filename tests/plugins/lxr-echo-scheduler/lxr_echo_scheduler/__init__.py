"""A toy scheduler plugin for lxr (see pyproject.toml)."""
