"""Backups of a server's directory: tar.zst archives made by the compression engine, kept, listed, restored."""
