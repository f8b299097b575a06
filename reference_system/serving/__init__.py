"""The service half of the reference system: real servers on loopback (FastAPI on uvicorn,
Triton, Redis), the clients that talk to them, and the process management that starts and
stops them cleanly. Importing this package loads none of the heavy client libraries."""
