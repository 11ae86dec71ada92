"""Kafka plumbing shared by the services: topics, the service runtime, idempotency, clients."""
