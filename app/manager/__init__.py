"""The application core: jobs, history, accounts and restore, shared by the window and the CLI (no Qt)."""
