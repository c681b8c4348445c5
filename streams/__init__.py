"""The Faust app, its agents, the CLI, web views and metrics."""
