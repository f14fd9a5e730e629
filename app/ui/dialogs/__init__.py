"""The window's dialogs: new download, new upload, accounts and preferences.

Every dialog is opened with ``open()`` (window-modal, non-blocking), never ``exec()``: a nested Qt event loop
under qasync would re-enter the asyncio loop the manager runs on. Work a dialog asks of the manager is
awaited in a task; the dialog only closes once the manager has accepted it, and shows the manager's
sentence inline when it refuses.
"""

from __future__ import annotations

from app.ui.dialogs.accounts import AccountsDialog
from app.ui.dialogs.new_download import NewDownloadDialog
from app.ui.dialogs.new_upload import NewUploadDialog
from app.ui.dialogs.preferences import PreferencesDialog

__all__ = ["AccountsDialog", "NewDownloadDialog", "NewUploadDialog", "PreferencesDialog"]
