"""A local identity provider for development and tests. Never deployed to production."""
