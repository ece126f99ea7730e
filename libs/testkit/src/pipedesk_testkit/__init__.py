"""Test support every PipeDesk test uses: a pytest plugin with real servers and Google."""
