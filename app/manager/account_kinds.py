"""The kinds of account (provider and authentication), apart from :mod:`app.manager.accounts`.

Why a module of their own: the CLI's argument parser lists them as choices, and building the parser (``--help``,
``--version``, a plain download) must not import the account store's HTTP, keyring and database machinery.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["AUTHS", "Auth", "Provider"]


class Provider(Enum):
    HTTP = "http"  # a plain HTTP(S) server (download and the default chunk-upload protocol)
    ALIYUN_OSS = "aliyun-oss"
    AZURE_BLOB = "azure-blob"


class Auth(Enum):
    NONE = "none"  # HTTP without credentials
    BEARER = "bearer"  # HTTP: secret = token, sent as Authorization: Bearer
    BASIC = "basic"  # HTTP: fields["username"], secret = password
    ACCESS_KEY = "access-key"  # OSS: fields["access_key_id"], fields["region"], secret = AccessKey secret
    PRESIGN_SERVICE = "presign-service"  # OSS: endpoint = the presign service URL, secret = its token
    SHARED_KEY = "shared-key"  # Azure: fields["account_name"], secret = account key (base64)
    SAS = "sas"  # Azure: endpoint = container/account URL, secret = the SAS token (query string)


#: Which kinds of authentication each provider takes; the first is the default.
AUTHS: dict[Provider, tuple[Auth, ...]] = {
    Provider.HTTP: (Auth.NONE, Auth.BEARER, Auth.BASIC),
    Provider.ALIYUN_OSS: (Auth.ACCESS_KEY, Auth.PRESIGN_SERVICE),
    Provider.AZURE_BLOB: (Auth.SHARED_KEY, Auth.SAS),
}
