"""Site presets for launch scripts, under lxm3's names (``from lxr.contrib import ucl``)."""

__all__: list[str] = []
