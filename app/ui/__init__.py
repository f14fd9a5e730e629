"""The PySide6 desktop window; it arrives with the desktop-app issue."""
