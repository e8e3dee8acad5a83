"""The `tuneboard` command: a table of every command above engine/ and webui/ (neither imports this package)."""
