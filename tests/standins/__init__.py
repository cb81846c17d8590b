"""Stand-ins for parts that cannot run on a machine without a GPU; each keeps the real contract."""
