"""PipeDesk calendar service."""
