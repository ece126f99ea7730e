"""PipeDesk automation: mail attachments saved into records' Drive folders."""
