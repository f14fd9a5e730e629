"""Reliability suites (issue 6): property tests, control storm and bad input at the engine and CLI level."""
