"""(c) The naive faust-streaming agent: ``async for`` + ``topic.send`` per event.

Usage: ``python -m bench.naive_faust BOOTSTRAP SOURCE SINK APP_ID DATADIR``
"""

import sys

import faust

from bench.baselines import Work


def main() -> None:
    """Run the agent until killed."""
    bootstrap, source, sink, app_id, datadir = sys.argv[1:6]
    app = faust.App(app_id, broker=f"kafka://{bootstrap}", value_serializer="raw",
                    web_enabled=False, datadir=datadir, producer_acks=-1)
    source_topic = app.topic(source, value_serializer="raw", key_serializer="raw")
    sink_topic = app.topic(sink, value_serializer="raw", key_serializer="raw")
    work = Work()

    @app.agent(source_topic)
    async def score(stream):
        async for key, value in stream.items():
            await sink_topic.send(key=key, value=work.handle(value))

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.spinner = None  # the spinner would set the root logger to DEBUG
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
