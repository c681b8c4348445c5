"""River models, drift detection and the checkpoint format. No Kafka, no Redis."""
