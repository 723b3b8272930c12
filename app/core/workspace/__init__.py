"""The workspace: open documents and tabs, the saved session, the open folder (Qt-free parts)."""
