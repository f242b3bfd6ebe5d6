"""Network definitions and the one factory that builds them from a `ModelSpec`."""
