"""PipeDesk CRM service."""
