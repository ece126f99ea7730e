"""PipeDesk timeline service."""
