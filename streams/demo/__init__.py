"""``driftline demo``: the whole system on a drifting stream, live, with a picture at the end.

One job per module: :mod:`~streams.demo.dataset` (what is sent),
:mod:`~streams.demo.services` (Kafka, Redis and the worker it starts and always stops),
:mod:`~streams.demo.tracker` (what came out, pure), :mod:`~streams.demo.probe` (the worker's
own view: lag, checkpoints), :mod:`~streams.demo.runner` (send, read, show),
:mod:`~streams.demo.live` (the terminal view), :mod:`~streams.demo.summary` (the final
figures) and :mod:`~streams.demo.plot` (the PNG).
"""
