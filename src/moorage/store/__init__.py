"""Persistence backends. Knows nothing of registries, identities or ARM."""
