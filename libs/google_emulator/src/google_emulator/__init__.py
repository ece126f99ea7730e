"""A local stand-in for Google's REST APIs, for development and tests. Never used in production."""
