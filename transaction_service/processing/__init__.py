"""The processing worker: submits payments and refunds to the processor, reconciles, takes webhooks.

`python -m transaction_service.processing` runs it: a workload of its own beside the gRPC service
(which only queues work), as many replicas as wanted, sharing the queue in the database.
"""
