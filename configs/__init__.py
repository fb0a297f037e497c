"""Bundled presets (data only): ``hardware/``, ``models/`` and ``sweeps/`` TOML files."""
