"""Unit tests of the Ray Train adapter (s2s/train): no cluster needed."""
