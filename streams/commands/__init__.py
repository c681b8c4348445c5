"""One module per ``driftline`` sub-command group; ``streams.cli`` assembles them."""
