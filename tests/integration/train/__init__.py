"""Integration tests of the Ray Train adapter on real local Ray clusters."""
