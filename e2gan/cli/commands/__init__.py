"""One module per family of commands; each command takes the parsed arguments and returns its last line."""
