"""The bridge and the test's devices on the ``secure`` fixture's TLS-only Mosquitto (client
certificate, password and ACL required): the connector keys that log the bridge in, and how a
simulated device logs in.

The ACL lets a device (user ``device-1``) write and read only ``plants/+/devices/device-1/...``,
and the bridge read and write the devices' topics of that shape: tests on this broker use topics
``plants/<unique plant>/devices/device-1/...``.
"""

from __future__ import annotations

from mqtt_kafka_sync.config.model import MqttTls
from mqtt_kafka_sync.devstack.secure import BRIDGE_USER, DEVICE_USER, SecureEndpoints
from mqtt_kafka_sync.mqtt.paho_client import MqttAccess


def bridge_keys(secure: SecureEndpoints) -> dict[str, str]:
    """``mqtt.*`` keys of a connector logging in as ``bridge``: its certificate, its encrypted key
    and the key's passphrase, its password."""
    certs = secure.material.certs
    return {
        "mqtt.server.uri": secure.mqtt_uri,
        "mqtt.username": BRIDGE_USER,
        "mqtt.password": secure.material.mqtt_users[BRIDGE_USER],
        "mqtt.ssl.ca.location": str(certs.ca),
        "mqtt.ssl.certificate.location": str(certs.client_cert("bridge")),
        "mqtt.ssl.key.location": str(certs.bridge_encrypted_key),
        "mqtt.ssl.key.password": certs.key_password,
    }


def device_access(secure: SecureEndpoints) -> MqttAccess:
    """How a simulated device logs in: user ``device-1``, its certificate and password."""
    certs = secure.material.certs
    tls = MqttTls(certs.ca, certs.client_cert("device"), certs.client_key("device"))
    return MqttAccess(DEVICE_USER, secure.material.mqtt_users[DEVICE_USER], tls)
