"""Archives: building zip/tar(.gz/.xz/.zst) from a server's files and unpacking them safely."""
