"""The local development and test stack: a real Kafka (KRaft) and a real Mosquitto, without Docker.

``LocalStack`` composes ``KafkaProcess`` (jars from Maven Central via ``brokers/kafka/pom.xml``) and
``MosquittoProcess`` (Debian's package, config from ``brokers/mosquitto/mosquitto.conf``);
``commands.register`` adds ``mqtt-kafka-sync stack up|down|status``. Failures raise
:class:`mqtt_kafka_sync.errors.StackError` with a message meant for a person.
"""

from mqtt_kafka_sync.devstack.hivemq import HiveMQProcess
from mqtt_kafka_sync.devstack.kafka import KafkaProcess, kafka_ready
from mqtt_kafka_sync.devstack.mosquitto import MosquittoProcess, mqtt5_handshake
from mqtt_kafka_sync.devstack.ports import free_ports
from mqtt_kafka_sync.devstack.stack import ComponentStatus, LocalStack, StackStatus

__all__ = [
    "ComponentStatus",
    "HiveMQProcess",
    "KafkaProcess",
    "LocalStack",
    "MosquittoProcess",
    "StackStatus",
    "free_ports",
    "kafka_ready",
    "mqtt5_handshake",
]
