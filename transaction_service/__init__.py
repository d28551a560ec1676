"""The transaction service: payments and refunds over gRPC (payments.transaction.v1)."""
