"""Downloads with MD5 verification, optional auth header and atomic writes."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
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


def download(
    url: str, dest: Path, md5: str | None = None, headers: dict[str, str] | None = None, timeout: float = 60.0
) -> Path:
    """Fetch ``url`` to ``dest`` (written under a temporary name, renamed when complete)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(partial, "wb") as out:
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
