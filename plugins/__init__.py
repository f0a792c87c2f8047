"""Built-in FlowMason plugins, one folder per feature (see kernel/plugins.py DEFAULT_PLUGINS)."""
