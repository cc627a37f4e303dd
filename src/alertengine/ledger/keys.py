"""Where the checkpoint signing key comes from: the environment, or a key file.

Never from the config file (config is shared and versioned; a private key is not).

1. ``ALERTENGINE_CHECKPOINT_KEY``: a signer key string (``PRIVATE+KEY+…``), e.g. from the
   deployment's secret store.
2. Else ``ALERTENGINE_CHECKPOINT_KEY_FILE``: a file holding that string.
3. Else ``checkpoint.key`` in the state directory (next to the SQLite ledger, or ``var/``).
   If it does not exist yet it is created on first use (mode 0600) with a WARNING log line
   that names the file and prints the verifier key: like an SSH host key, the checkpoint key
   is the log's *identity*, not a shared secret, so a fresh install gets one without setup;
   the operator then publishes the verifier key (``alertengine ledger public-key``) and backs
   the file up. A key named by 1. or 2. that is missing or malformed is an error, never
   silently replaced.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from alertengine.ledger.checkpoint import CheckpointError, NoteSigner

ENV_CHECKPOINT_KEY = "ALERTENGINE_CHECKPOINT_KEY"
ENV_CHECKPOINT_KEY_FILE = "ALERTENGINE_CHECKPOINT_KEY_FILE"
DEFAULT_KEY_NAME = "alertengine"
KEY_FILE_NAME = "checkpoint.key"

log = logging.getLogger("alertengine.ledger.keys")


def state_dir_for(store_url: str) -> Path:
    """The directory a store keeps its state in: the SQLite file's, else ``var/``."""
    if store_url.startswith("sqlite:///"):
        return Path(store_url[len("sqlite:///") :]).parent
    return Path("var")


def key_file_path(env: Mapping[str, str], state_dir: Path) -> Path:
    named = env.get(ENV_CHECKPOINT_KEY_FILE, "")
    return Path(named) if named else state_dir / KEY_FILE_NAME


def write_key_file(path: Path, signer: NoteSigner, *, replace: bool = False) -> bool:
    """Write ``signer`` to ``path``, readable by the owner only, complete or not at all.

    Without ``replace``, an existing file wins (two replicas starting at once end up with
    one key): returns False and writes nothing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(signer.skey + "\n")
        f.flush()
        os.fsync(f.fileno())
    try:
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # fails if the file exists: first writer wins
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def load_signer(
    env: Mapping[str, str] | None = None,
    *,
    state_dir: Path = Path("var"),
    create: bool = True,
    name: str = DEFAULT_KEY_NAME,
) -> NoteSigner:
    """The checkpoint signer, found as the module docstring says.

    Raises :class:`CheckpointError` for a named key that is missing or malformed, or (with
    ``create=False``) when there is no key at all.
    """
    env = os.environ if env is None else env
    raw = env.get(ENV_CHECKPOINT_KEY, "")
    if raw:
        try:
            return NoteSigner.from_skey(raw)
        except CheckpointError as exc:
            raise CheckpointError(f"{ENV_CHECKPOINT_KEY}: {exc}") from None
    path = key_file_path(env, state_dir)
    if path.exists():
        try:
            return NoteSigner.from_skey(path.read_text(encoding="utf-8"))
        except (OSError, CheckpointError) as exc:
            raise CheckpointError(f"checkpoint key file {path}: {exc}") from None
    if env.get(ENV_CHECKPOINT_KEY_FILE) or not create:
        raise CheckpointError(
            f"no checkpoint key: {path} does not exist (set {ENV_CHECKPOINT_KEY} or "
            f"{ENV_CHECKPOINT_KEY_FILE})"
        )
    signer = NoteSigner.generate(name)
    if not write_key_file(path, signer):  # another process made it first: use that one
        return load_signer(env, state_dir=state_dir, create=False, name=name)
    log.warning(
        "generated a new ledger checkpoint signing key in %s (back it up; publish the "
        "verifier key so auditors can check checkpoints): %s",
        path,
        signer.verifier.vkey,
    )
    return signer
