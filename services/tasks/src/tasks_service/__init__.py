"""PipeDesk tasks service."""
