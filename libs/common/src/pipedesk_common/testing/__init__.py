"""Test support every service uses: a pytest plugin with real databases, identities and servers."""
