import sys

from mqtt_kafka_sync.cli.main import main

sys.exit(main())
