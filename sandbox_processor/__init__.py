"""A stand-in payment processor, served over HTTP+JSON like a real one (`python -m sandbox_processor`).

It is a separate product with its own storage (a SQLite file), so the transaction service can be
tested against something that times out, declines, answers late and sends webhooks twice, exactly
as real processors do, without a network or an account anywhere.
"""
