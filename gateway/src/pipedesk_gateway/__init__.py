"""The PipeDesk API gateway: the frontend's one front door."""
