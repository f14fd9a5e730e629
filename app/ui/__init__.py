"""The PySide6 desktop window: shell (app.py), main window, dialogs, tray, single instance."""
