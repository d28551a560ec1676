"""Graceful shutdown: in-flight calls finish, new calls are refused, the pool is closed."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc

from payments.auth.v1 import auth_pb2, auth_pb2_grpc


def test_in_flight_calls_finish_while_new_ones_are_refused(start_auth, auth_stub):
    # a costly hash makes each login take long enough to be in flight during the stop
    # six concurrent logins of one account: allow them (attempts are reserved before hashing)
    server = start_auth(password_time_cost=12, shutdown_grace_seconds=10.0, login_max_failures=100)
    email, password = f"drain-{uuid.uuid4().hex[:8]}@example.com", "drain test password"
    auth_stub.Register(auth_pb2.RegisterRequest(email=email, password=password))
    request = auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password=password))
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=5)  # connect first

    def login() -> tuple[auth_pb2.LoginResponse, float]:
        return stub.Login(request, timeout=30), time.monotonic()

    with ThreadPoolExecutor(max_workers=6) as pool:
        in_flight = [pool.submit(login) for _ in range(6)]
        time.sleep(0.15)
        stop_started = time.monotonic()
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        time.sleep(0.1)
        refused_code = None
        try:
            stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=5)
        except grpc.RpcError as err:
            refused_code = err.code()
        results = [f.result() for f in in_flight]
        stopper.join(timeout=30)
    channel.close()
    assert all(r.tokens.access_token for r, _ in results)
    assert max(finished for _, finished in results) > stop_started  # they really were in flight
    assert refused_code == grpc.StatusCode.UNAVAILABLE
    assert not stopper.is_alive()
