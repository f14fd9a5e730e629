"""User preferences, typed, over QSettings (DESIGN: "user preferences live in QSettings").

Why a wrapper instead of raw ``QSettings.value`` calls: QSettings returns strings from INI files and
native types from the registry/plist, so every reader would have to coerce and validate on its own.
Here each preference has one key, one type, one default and one validation rule, and a ``changed``
signal lets the shell re-apply concurrency and speed limits to the manager the moment they change.

The network preferences (proxy, bypass list, CA bundle) are read and written together as the manager's
:class:`~app.manager.network.NetworkSettings`, so the window and the manager judge them by one set of rules. The
proxy password is not a preference: it lives in the OS keyring (the manager's ``set_network`` puts it there) and
never in this file.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QSettings, QStandardPaths, Signal

from app.engine.redact import redact_url
from app.manager.network import NetworkSettings, NetworkSettingsError, ProxyMode

__all__ = ["KEYS", "MAX_CHUNK_SIZE", "MAX_CONNECTIONS", "MIN_CHUNK_SIZE", "NETWORK_KEYS", "Preferences",
           "PreferencesError"]

MIB = 1024 * 1024
MAX_TRANSFERS = 64
MAX_CONNECTIONS = 16
MIN_CHUNK_SIZE = 256 * 1024
MAX_CHUNK_SIZE = 1024 * MIB

# Keys in QSettings: stable strings, because they are what users' settings files contain.
MAX_DOWNLOADS = "transfers/max_downloads"
MAX_UPLOADS = "transfers/max_uploads"
CONNECTIONS = "transfers/connections_per_download"
CHUNK_SIZE = "transfers/chunk_size"
SPEED_LIMIT = "transfers/speed_limit"
DOWNLOAD_DIR = "paths/default_download_dir"
UPLOAD_REMOTE = "paths/default_upload_remote"
START_MINIMIZED = "window/start_minimized"
NOTIFICATIONS = "window/notifications"
CLOSE_TO_TRAY = "window/close_to_tray"
PROXY_MODE = "network/proxy_mode"
PROXY_URL = "network/proxy_url"
PROXY_USER = "network/proxy_user"
NO_PROXY = "network/no_proxy"
CA_BUNDLE = "network/ca_bundle"

#: The keys of NetworkSettings' fields, in its order; the password has none (keyring only).
NETWORK_KEYS = (PROXY_MODE, PROXY_URL, PROXY_USER, NO_PROXY, CA_BUNDLE)

KEYS = (
    MAX_DOWNLOADS,
    MAX_UPLOADS,
    CONNECTIONS,
    CHUNK_SIZE,
    SPEED_LIMIT,
    DOWNLOAD_DIR,
    UPLOAD_REMOTE,
    START_MINIMIZED,
    NOTIFICATIONS,
    CLOSE_TO_TRAY,
    *NETWORK_KEYS,
)


def _tr(text: str) -> str:
    return QCoreApplication.translate("Preferences", text)


class PreferencesError(ValueError):
    """A value a preference cannot take; the message is a sentence fit for a dialog."""


def _as_int(raw: Any, default: int) -> int:
    """Read an int stored by any QSettings backend (INI stores strings); fall back on garbage."""
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return int(raw)
    try:
        return int(raw)
    except (TypeError, ValueError):
        try:
            return int(float(raw))
        except (TypeError, ValueError):
            return default


def _as_bool(raw: Any, default: bool) -> bool:
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int):
        return raw != 0
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    return default


def _check_int(value: object, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PreferencesError(_tr("{what} must be a whole number.").format(what=what))
    if not low <= value <= high:
        raise PreferencesError(
            _tr("{what} must be between {low} and {high}.").format(what=what, low=low, high=high)
        )
    return value


def default_download_dir() -> str:
    """The platform's Downloads folder (falls back to the home folder when the platform has none)."""
    location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DownloadLocation)
    if not location:
        location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.HomeLocation)
    return location


class Preferences(QObject):
    """Typed access to the user's preferences; setters validate, persist and emit ``changed(key)``.

    ``settings`` may be passed in (tests, portable mode); otherwise the application's default QSettings
    (organisation and application names set by the shell) is used.
    """

    changed = Signal(str)

    def __init__(self, settings: QSettings | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._settings = settings if settings is not None else QSettings()

    @classmethod
    def defaults(cls) -> Preferences:
        """A read-only view of the defaults (backed by an empty, never-written store): Restore Defaults."""
        return cls(QSettings(os.devnull, QSettings.Format.IniFormat))

    @property
    def settings(self) -> QSettings:
        return self._settings

    # -- plumbing ----------------------------------------------------------------------------------------

    def _store(self, key: str, value: Any) -> None:
        """Write, and emit ``changed`` only on a real change of the typed value (no feedback loops)."""
        old = self._raw_snapshot(key)
        if value is None:
            self._settings.remove(key)
        else:
            self._settings.setValue(key, value)
        if old != self._raw_snapshot(key):
            self._settings.sync()
            self.changed.emit(key)

    def _raw_snapshot(self, key: str) -> object:
        """The typed value behind ``key``; compared before/after a write to decide whether to emit."""
        getter = _GETTERS[key]
        return getter(self)

    def sync(self) -> None:
        """Flush to disk now (QSettings also does it by itself on a timer and at exit)."""
        self._settings.sync()

    def reset(self, key: str) -> None:
        """Forget the stored value, so the default applies again."""
        if key not in _GETTERS:
            raise PreferencesError(_tr("Unknown preference: {key}").format(key=key))
        old = self._raw_snapshot(key)
        self._settings.remove(key)
        if old != self._raw_snapshot(key):
            self.changed.emit(key)

    # -- concurrency -------------------------------------------------------------------------------------

    @property
    def max_downloads(self) -> int:
        """How many downloads run at once."""
        value = _as_int(self._settings.value(MAX_DOWNLOADS), 3)
        return value if 1 <= value <= MAX_TRANSFERS else 3

    @max_downloads.setter
    def max_downloads(self, value: int) -> None:
        self._store(MAX_DOWNLOADS, _check_int(value, 1, MAX_TRANSFERS, _tr("Simultaneous downloads")))

    @property
    def max_uploads(self) -> int:
        """How many uploads run at once."""
        value = _as_int(self._settings.value(MAX_UPLOADS), 2)
        return value if 1 <= value <= MAX_TRANSFERS else 2

    @max_uploads.setter
    def max_uploads(self, value: int) -> None:
        self._store(MAX_UPLOADS, _check_int(value, 1, MAX_TRANSFERS, _tr("Simultaneous uploads")))

    @property
    def connections(self) -> int:
        """Parallel connections (ranges) per download; the default for new downloads."""
        value = _as_int(self._settings.value(CONNECTIONS), 4)
        return value if 1 <= value <= MAX_CONNECTIONS else 4

    @connections.setter
    def connections(self, value: int) -> None:
        self._store(CONNECTIONS, _check_int(value, 1, MAX_CONNECTIONS, _tr("Connections per download")))

    @property
    def chunk_size(self) -> int:
        """Bytes per chunk/part; default 8 MiB."""
        value = _as_int(self._settings.value(CHUNK_SIZE), 8 * MIB)
        return value if MIN_CHUNK_SIZE <= value <= MAX_CHUNK_SIZE else 8 * MIB

    @chunk_size.setter
    def chunk_size(self, value: int) -> None:
        self._store(CHUNK_SIZE, _check_int(value, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE, _tr("Chunk size")))

    @property
    def speed_limit(self) -> int | None:
        """The global speed limit in bytes/s; None = unlimited (stored as 0)."""
        value = _as_int(self._settings.value(SPEED_LIMIT), 0)
        return value if value > 0 else None

    @speed_limit.setter
    def speed_limit(self, value: int | None) -> None:
        if value is None or value == 0:
            self._store(SPEED_LIMIT, None)
            return
        self._store(SPEED_LIMIT, _check_int(value, 1, 1 << 40, _tr("Speed limit")))

    # Longer spellings of the same two preferences, for readers who look for the wording.
    connections_per_download = connections
    global_speed_limit = speed_limit

    # -- places ------------------------------------------------------------------------------------------

    @property
    def default_download_dir(self) -> str:
        raw = self._settings.value(DOWNLOAD_DIR)
        return str(raw) if raw else default_download_dir()

    @default_download_dir.setter
    def default_download_dir(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise PreferencesError(_tr("The default download folder cannot be empty."))
        self._store(DOWNLOAD_DIR, value.strip())

    @property
    def default_upload_remote(self) -> str:
        """Where dropped files go by default (an http(s) endpoint, oss://… or azure://…); "" = ask."""
        raw = self._settings.value(UPLOAD_REMOTE)
        return str(raw) if raw else ""

    @default_upload_remote.setter
    def default_upload_remote(self, value: str) -> None:
        if not isinstance(value, str):
            raise PreferencesError(_tr("The default upload destination must be text."))
        text = value.strip()
        if text and "://" not in text:
            raise PreferencesError(
                _tr("The default upload destination must be a URL (http://, https://, oss:// or azure://).")
            )
        if text and redact_url(text) != text:
            # QSettings is a plain file: a SAS token or signature would sit there unprotected.
            raise PreferencesError(
                _tr("A signed link (SAS or presigned URL) cannot be the default upload destination, because "
                    "preferences are not a safe place for its signature. Add it as an account and use "
                    "azure://ACCOUNT/container/path instead.")
            )
        self._store(UPLOAD_REMOTE, text or None)

    # -- window ------------------------------------------------------------------------------------------

    @property
    def start_minimized(self) -> bool:
        return _as_bool(self._settings.value(START_MINIMIZED), False)

    @start_minimized.setter
    def start_minimized(self, value: bool) -> None:
        self._store(START_MINIMIZED, bool(value))

    @property
    def notifications(self) -> bool:
        """Desktop notifications when a job completes or fails."""
        return _as_bool(self._settings.value(NOTIFICATIONS), True)

    @notifications.setter
    def notifications(self, value: bool) -> None:
        self._store(NOTIFICATIONS, bool(value))

    @property
    def close_to_tray(self) -> bool | None:
        """What closing the window does while transfers run: None = ask, True = keep in tray, False = quit."""
        raw = self._settings.value(CLOSE_TO_TRAY)
        if raw is None or raw == "":
            return None
        # Anything unreadable means "ask": asking again is the safe answer to a damaged setting.
        if_true, if_false = _as_bool(raw, True), _as_bool(raw, False)
        return if_true if if_true == if_false else None

    @close_to_tray.setter
    def close_to_tray(self, value: bool | None) -> None:
        if value is not None and not isinstance(value, bool):
            raise PreferencesError(_tr("Close to tray must be yes, no or ask."))
        self._store(CLOSE_TO_TRAY, value)


    # -- network -----------------------------------------------------------------------------------------

    @property
    def network_settings(self) -> NetworkSettings:
        """Proxy, bypass list and CA bundle (never the password). A damaged or hand-edited file that no longer
        describes usable settings falls back to the defaults (follow the system), as other damaged values do."""
        raw = {
            "proxy_mode": self._settings.value(PROXY_MODE) or ProxyMode.SYSTEM.value,
            "proxy_url": self._settings.value(PROXY_URL) or "",
            "proxy_user": self._settings.value(PROXY_USER) or "",
            "no_proxy": self._settings.value(NO_PROXY) or None,
            "ca_bundle": self._settings.value(CA_BUNDLE) or None,
        }
        try:
            settings = NetworkSettings.from_mapping({k: v if v is None else str(v) for k, v in raw.items()})
            settings.check()
        except NetworkSettingsError:
            return NetworkSettings()
        return settings

    @network_settings.setter
    def network_settings(self, value: NetworkSettings) -> None:
        """Store every field (checked first, without touching files: the CA bundle's content is checked where it
        is chosen, off the event loop); each key that really changed is signalled once."""
        if not isinstance(value, NetworkSettings):
            raise PreferencesError(_tr("The network settings are not valid."))
        try:
            value.check()
        except NetworkSettingsError as exc:
            raise PreferencesError(str(exc)) from None
        stored = value.as_mapping()
        if stored["proxy_mode"] == ProxyMode.SYSTEM.value:
            stored["proxy_mode"] = None  # the default is not written: no change signalled for it
        for key, field_name in zip(NETWORK_KEYS, ("proxy_mode", "proxy_url", "proxy_user", "no_proxy", "ca_bundle"),
                                   strict=True):
            self._store(key, stored[field_name] or None)


_GETTERS = {
    MAX_DOWNLOADS: lambda p: p.max_downloads,
    MAX_UPLOADS: lambda p: p.max_uploads,
    CONNECTIONS: lambda p: p.connections,
    CHUNK_SIZE: lambda p: p.chunk_size,
    SPEED_LIMIT: lambda p: p.speed_limit,
    DOWNLOAD_DIR: lambda p: p.default_download_dir,
    UPLOAD_REMOTE: lambda p: p.default_upload_remote,
    START_MINIMIZED: lambda p: p.start_minimized,
    NOTIFICATIONS: lambda p: p.notifications,
    CLOSE_TO_TRAY: lambda p: p.close_to_tray,
    PROXY_MODE: lambda p: p._settings.value(PROXY_MODE) or None,
    PROXY_URL: lambda p: p._settings.value(PROXY_URL) or None,
    PROXY_USER: lambda p: p._settings.value(PROXY_USER) or None,
    NO_PROXY: lambda p: p._settings.value(NO_PROXY) or None,
    CA_BUNDLE: lambda p: p._settings.value(CA_BUNDLE) or None,
}
