"""Replay: a range of a Kafka topic copied into another topic, or into MQTT through a command relay
connector's routes, paced by consumer lag, resumable.

- ``request.py``: what was asked (the command's options as one object) and its checks.
- ``session.py``: from request to plan: the target checked or created, the checkpoint resumed or a
  fresh plan made (``plan.py``: which offsets; ``checkpoint.py``: the resumable checkpoint).
- ``runner.py``: a planned replay run: the target opened, the throttle wired, the copy loop driven
  until done, failed or stopped (its ``stop`` Event); ``copier.py``: the copy loop;
  ``progress.py``: what it reports and returns.
- ``target.py``: a Kafka topic; ``mqtt_target.py`` and ``to_mqtt.py``: MQTT through the relay's routes.

The commands (``mqtt-kafka-sync replay``, ``lag``) parse and print in :mod:`mqtt_kafka_sync.cli.replay`.
"""
