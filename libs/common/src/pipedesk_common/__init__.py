"""Infrastructure shared by every PipeDesk service."""
