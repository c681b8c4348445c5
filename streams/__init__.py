"""The Faust app (lifecycle, web), the aiokafka consumer loop, the CLI, web views and metrics."""
