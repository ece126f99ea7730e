"""PipeDesk accounts service: Google connections and the token vault."""
