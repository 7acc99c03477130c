"""Downloads with MD5 verification, optional auth header and atomic writes."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from .errors import HeadstartError


class DownloadError(HeadstartError, RuntimeError):
    """A download that failed or did not verify; the message names the URL."""


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def auth_header_from_env(variable: str | None) -> dict[str, str]:
    """'Name: value' from the environment variable ``variable`` (nothing when unset or None)."""
    if not variable:
        return {}
    raw = os.environ.get(variable)
    if not raw:
        return {}
    name, sep, value = raw.partition(":")
    if not sep or not name.strip():
        raise DownloadError(f"${variable} must hold a full header such as 'Authorization: Bearer TOKEN'")
    return {name.strip(): value.strip()}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, the port made explicit: what a credential is bound to."""
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


class _SameOriginCredentials(urllib.request.HTTPRedirectHandler):
    """Follows redirects, re-attaching the credential headers only where the new URL has the origin they
    were given for (as requests and curl do): a redirect to another host, port or scheme gets none."""

    def __init__(self, url: str, credentials: dict[str, str]):
        super().__init__()
        self.origin, self.credentials = origin(url), credentials

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and origin(newurl) == self.origin:
            for name, value in self.credentials.items():
                new.add_unredirected_header(name, value)
        return new


def download(
    url: str,
    dest: Path,
    md5: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    allow_plain_http_credentials: bool = False,
) -> Path:
    """Fetch ``url`` to ``dest`` (written under a temporary name, renamed when complete).

    ``headers`` are credentials: sent to ``url``'s origin only (never to another origin a redirect leads
    to), and over plain http only with ``allow_plain_http_credentials``.
    """
    dest = Path(dest)
    headers = headers or {}
    if headers and urllib.parse.urlsplit(url).scheme == "http" and not allow_plain_http_credentials:
        raise DownloadError(
            f"{url}: refusing to send the {', '.join(headers)} header over plain http, where anyone on the way "
            "can read it (use https, or allow it explicitly: dataset.imagenet21k.allow_plain_http_credentials)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    request = urllib.request.Request(url)
    for name, value in headers.items():
        request.add_unredirected_header(name, value)  # never copied to a redirect by urllib itself
    opener = urllib.request.build_opener(_SameOriginCredentials(url, headers))
    try:
        with opener.open(request, timeout=timeout) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as err:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"{url}: {getattr(err, 'reason', err)}") from None
    if md5 is not None and (got := md5sum(partial)) != md5:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"{url}: MD5 {got} does not match the expected {md5}")
    shutil.move(partial, dest)
    return dest
