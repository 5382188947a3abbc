"""Replay and the lag-driven throttle: Kafka -> Kafka backfills, paced by consumer lag.

- ``lag.py``: consumer lag of named groups through the admin API (records and age).
- ``lag_process.py``: the same reads in a child process, so a librdkafka crash spares the data path.
- ``controller.py``: the rate controller (AIMD with hysteresis over lag) and the token bucket.
- ``throttle.py``: :class:`~mqtt_kafka_sync.throttle.lag_throttle.AckThrottle`, what the ingest and the
  replay ask before letting records through, and the thread that steers it by lag.
- ``plan.py``, ``checkpoint.py``, ``target.py``, ``copier.py``: ``mqtt-kafka-sync replay``:
  which offsets to copy, the resumable checkpoint, where records go, the copy loop.
- ``cli.py``: the ``replay`` and ``lag`` commands.
"""
