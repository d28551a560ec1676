"""Client package for internal Python callers of the payments services.

    with connect("auth:50051", "tx:50052", ServiceLogin(client_id, secret)) as client:
        payment = client.create_payment(1250, "EUR", description="coffee beans")

Tokens are attached and renewed automatically, every call has a deadline, and
only calls that are safe to repeat are retried (with the same idempotency key).
"""

from payments_client.auth import AuthClient
from payments_client.channel import TlsConfig, open_channel
from payments_client.client import PaymentsClient
from payments_client.connect import connect
from payments_client.credentials import Login, ServiceLogin, TokenSource, UserLogin
from payments_client.errors import PaymentsError, StatusDetails
from payments_client.metadata import MetadataInterceptor, authenticated_channel
from payments_client.names import status_name, type_name
from payments_client.retry import RetryPolicy
from payments_client.watch import ChangeStream

__all__ = [
    "AuthClient",
    "ChangeStream",
    "Login",
    "MetadataInterceptor",
    "PaymentsClient",
    "PaymentsError",
    "RetryPolicy",
    "ServiceLogin",
    "StatusDetails",
    "TlsConfig",
    "TokenSource",
    "UserLogin",
    "authenticated_channel",
    "connect",
    "open_channel",
    "status_name",
    "type_name",
]
