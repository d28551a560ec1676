"""The auth service: users, service principals, passwords, signed access tokens, refresh tokens."""
