"""The plugin host: the plugin manager, the shared runtime and ``mailcall serve``."""
