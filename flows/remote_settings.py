"""Where a run's output is published beyond this machine (load/remote.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from magsync.load.layout import is_url

REMOTE_COPIES = Path("data/out/remote")  # local working copies of remote outputs


class RemoteSettings(BaseModel):
    """Where the output is published beyond this machine (load/remote.py). Credentials
    never live here: the file system reads its own (for S3: AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role)."""

    url: str | None = Field(None, description="fsspec URL of the output, e.g. "
                            "s3://bucket/prefix; output_dir is then its local working copy")
    endpoint_url: str | None = Field(None, description="an S3-compatible server (default: "
                                     "AWS_ENDPOINT_URL, else AWS)")
    # where output_dir = "<url>" keeps its working copy: <local_dir>/<scheme>/<bucket>/...
    local_dir: Path = REMOTE_COPIES

    @field_validator("url")
    @classmethod
    def _a_url(cls, value: str | None) -> str | None:
        if value is not None and not is_url(value):
            raise ValueError(f"{value!r} is not a URL (scheme://bucket/prefix)")
        return value.rstrip("/") if value else None


def remote_output_dir(data: Any) -> Any:
    """Settings `data` with an output_dir that is a URL made remote.url, and output_dir
    its local working copy: <remote.local_dir>/<scheme>/<bucket>/<prefix>."""
    out = data.get("output_dir") if isinstance(data, dict) else None
    if isinstance(out, str) and is_url(out):
        remote = dict(data.get("remote") or {})
        remote["url"] = out
        base = Path(remote.get("local_dir") or REMOTE_COPIES)
        local = base / out.replace("://", "/", 1).rstrip("/")
        return {**data, "remote": remote, "output_dir": local}
    return data
