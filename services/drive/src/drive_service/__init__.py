"""PipeDesk drive service."""
