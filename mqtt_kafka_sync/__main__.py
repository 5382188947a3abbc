import sys

from mqtt_kafka_sync.cli.main import main

if __name__ == "__main__":  # task processes are spawned and re-import the main module
    sys.exit(main())
