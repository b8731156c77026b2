"""Ray Train adapter: distributed training of the core model (TorchTrainer, Ray Data shards)."""
