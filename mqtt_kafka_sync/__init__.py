"""mqtt-kafka-sync: MQTT <-> Kafka, in both directions, without losing a message.

Connector classes are named in config files by these dotted names (``connector.class``).
"""

from mqtt_kafka_sync.config.model import SOURCE_CONNECTOR_CLASS

__version__ = "0.1.0"

MqttSourceConnector = SOURCE_CONNECTOR_CLASS
"""``connector.class=mqtt_kafka_sync.MqttSourceConnector``: MQTT -> Kafka ingest."""

__all__ = ["MqttSourceConnector", "__version__"]
