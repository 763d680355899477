"""Fakes that sit at the transport seam: real servers on 127.0.0.1, started by the tests."""
