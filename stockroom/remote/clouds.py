"""What differs between the object-store clouds a stock remote can live on.

``s3://``, ``az://`` and ``gs://`` remotes share one backend
(:class:`stockroom.remote.objects.S3Store`, through obstore); this module
holds what is particular to each cloud: the word for a bucket, where the
credentials come from (for the one-line errors), which environment
variable may name an endpoint, the error codes that mean "no such bucket",
and how obstore's store is built. Credentials are never passed here: each
cloud's standard chain (environment, profile or CLI login, instance or
managed identity) is read by obstore itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cloud:
    """One cloud's particulars (see the module doc)."""

    scheme: str
    # "bucket" or "container", as that cloud's users say it.
    bucket_word: str
    # Where to look when access is denied (shown in the error line).
    credentials: str
    # Environment variables that may name the endpoint, first wins.
    endpoint_env: tuple[str, ...]
    # Error codes in a response that mean the bucket itself is missing.
    no_bucket_codes: tuple[str, ...]
    # What an unencrypted http:// endpoint exposes, for its warning.
    exposed: str


CLOUDS = {
    "s3": Cloud(
        scheme="s3",
        bucket_word="bucket",
        credentials="check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)",
        endpoint_env=("AWS_ENDPOINT_URL",),
        no_bucket_codes=("NoSuchBucket",),
        exposed="the AWS session token",
    ),
    "az": Cloud(
        scheme="az",
        bucket_word="container",
        credentials=(
            "check the Azure credentials (AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY, "
            "AZURE_STORAGE_SAS_TOKEN, a service principal's AZURE_CLIENT_ID/AZURE_TENANT_ID/"
            "AZURE_CLIENT_SECRET, a managed identity, or AZURE_USE_AZURE_CLI=true)"
        ),
        endpoint_env=("AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"),
        no_bucket_codes=("ContainerNotFound",),
        exposed="the request signatures and any SAS token",
    ),
    "gs": Cloud(
        scheme="gs",
        bucket_word="bucket",
        credentials=(
            "check the Google credentials (GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_SERVICE_ACCOUNT, "
            "`gcloud auth application-default login`, or the instance's service account)"
        ),
        endpoint_env=("GOOGLE_BASE_URL",),
        no_bucket_codes=("NoSuchBucket", "The specified bucket does not exist"),
        exposed="the OAuth access token",
    ),
}


def endpoint_from_env(cloud: Cloud) -> tuple[str, str]:
    """The endpoint the environment names for ``cloud`` and the variable
    that named it; ``("", "")`` when none does."""
    for var in cloud.endpoint_env:
        value = os.environ.get(var, "")
        if value:
            return value, var
    return "", ""


def azurite_url() -> str:
    """The emulator address object_store reads when ``AZURE_STORAGE_USE_EMULATOR``
    is on (``AZURITE_BLOB_STORAGE_URL``), so that it is checked like any endpoint."""
    if os.environ.get("AZURE_STORAGE_USE_EMULATOR", "").lower() in ("1", "true", "yes", "on"):
        return os.environ.get("AZURITE_BLOB_STORAGE_URL", "")
    return ""


def build_azure(container: str, endpoint: str, client_options: Any, retry: Any) -> Any:
    """An obstore AzureStore for ``container``; the account, key and the rest
    come from the environment (obstore reads ``AZURE_*``)."""
    from obstore.store import AzureStore

    config: Any = {}
    if endpoint:
        # The account's blob endpoint, e.g. https://ACCOUNT.blob.core.windows.net
        # or http://127.0.0.1:10000/devstoreaccount1 for Azurite.
        config["endpoint"] = endpoint
        if endpoint.lower().startswith("http://"):
            client_options = {**client_options, "allow_http": True}
    return AzureStore(container, config=config, client_options=client_options, retry_config=retry)


def build_gcs(bucket: str, endpoint: str, client_options: Any, retry: Any) -> Any:
    """An obstore GCSStore for ``bucket``; credentials come from Google's
    standard chain (obstore reads ``GOOGLE_*`` and the application defaults)."""
    from obstore.store import GCSStore

    config: Any = {}
    if endpoint:
        config["base_url"] = endpoint
        if endpoint.lower().startswith("http://"):
            client_options = {**client_options, "allow_http": True}
    return GCSStore(bucket, config=config, client_options=client_options, retry_config=retry)
