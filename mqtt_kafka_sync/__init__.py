"""mqtt-kafka-sync: MQTT <-> Kafka, in both directions, without losing a message.

Connector classes are named in config files by these dotted names (``connector.class``).
"""

from mqtt_kafka_sync.config.model import RELAY_CONNECTOR_CLASS, SOURCE_CONNECTOR_CLASS

__version__ = "0.1.0"

MqttSourceConnector = SOURCE_CONNECTOR_CLASS
"""``connector.class=mqtt_kafka_sync.MqttSourceConnector``: MQTT -> Kafka ingest."""

KafkaCommandRelayConnector = RELAY_CONNECTOR_CLASS
"""``connector.class=mqtt_kafka_sync.KafkaCommandRelayConnector``: Kafka -> MQTT command relay."""

__all__ = ["KafkaCommandRelayConnector", "MqttSourceConnector", "__version__"]
