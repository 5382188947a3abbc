"""Pacing by consumer lag, shared by the ingest (MQTT acknowledgements) and the replay (records).

``controller``: the pure rate controller (lag in, rate out) and its token bucket; ``lag_throttle``:
the controller fed by a lag reader on an interval; ``pacing``: acknowledgements held back to a rate.
"""
