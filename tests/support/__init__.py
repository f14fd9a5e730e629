"""Shared test fixtures: a real local HTTP/1.1 server with fault injection (``http_server``), so engine and
CLI tests exercise the actual httpx stack on a socket instead of mocks."""
