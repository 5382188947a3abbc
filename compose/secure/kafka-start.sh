#!/bin/bash
# Starts the Kafka of compose/docker-compose.secure.yml. The image's own launcher formats storage
# without SCRAM users, and SCRAM users can only be added when storage is formatted
# (kafka-storage format --add-scram), so this script formats on first start, then runs the broker.
set -euo pipefail
config=/tmp/server.properties
cat /etc/kafka-secure/kafka-server.properties /secure/kafka-listener.properties >"$config"
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
    mapfile -t scram </secure/kafka-scram.args
    /opt/kafka/bin/kafka-storage.sh format --cluster-id "$CLUSTER_ID" --config "$config" "${scram[@]}"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$config"
