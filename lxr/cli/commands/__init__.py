"""One module per ``lxr`` command; each has ``register(app)``, listed in ``lxr.cli.main``."""

__all__: list[str] = []
