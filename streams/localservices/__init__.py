"""Real Kafka and Redis as local processes, for development, tests and benchmarks.

Kafka runs from Apache's jars fetched by Maven (``ops/kafka/pom.xml``) as a
single-node KRaft broker; Redis is Debian's ``redis-server``. Nothing here
needs Docker.
"""
