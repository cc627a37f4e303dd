"""``alertengine silence …``: the verbs live in :mod:`alertengine.oncall.cli`."""

from alertengine.oncall.cli import silence_app as app

__all__ = ["app"]
