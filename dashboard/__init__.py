"""The web console of payments-grpc (SPEC §9): `python -m dashboard`.

A third service beside auth and transactions: it calls both over gRPC with the logged-in user's
own token, keeps no payment data, and imports neither service (only the shared packages).
"""
