"""Kafka + Ray Serve adapters: consumers, producers, topic administration."""
