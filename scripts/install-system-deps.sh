#!/usr/bin/env bash
# Installs what the local stack needs from Debian's packages: Mosquitto (broker and C clients),
# a JDK 17 and Maven (Kafka's and Avro's jars come from Maven Central through mvn), and Prometheus
# (with promtool: the observability tests scrape a worker and check the alert rules). Safe to run again.
set -euo pipefail

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
# javac: tests/integration/test_avro_java.py compiles the docs' Java reader against Avro's jars.
command -v javac >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
# python3-venv: tests/integration/test_container_steps.py builds the image's virtualenv with Debian's
# Python, which the image's non-root user can run (a Python under /root is out of its reach).
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged broker as a service on port 1883, and Prometheus on 9090 (plus its
# node exporter, when recommended packages come along); the project runs its own.
for service in mosquitto prometheus prometheus-node-exporter; do
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$service" >/dev/null 2>&1 || true; fi
  if command -v service >/dev/null 2>&1; then service "$service" stop >/dev/null 2>&1 || true; fi
done
