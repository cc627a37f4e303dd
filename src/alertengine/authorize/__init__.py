"""Human authorization: signed single-use approval links, previews, quorum, expiry."""

from alertengine.authorize.service import (
    AuthorizationError,
    Authorizer,
    ConfirmResult,
    ExpiryOutcome,
    IssuedLink,
    Preview,
)
from alertengine.authorize.tokens import (
    Claims,
    Problem,
    SecretError,
    TokenError,
    TokenSigner,
    check_secret,
)

__all__ = [
    "AuthorizationError",
    "Authorizer",
    "Claims",
    "ConfirmResult",
    "ExpiryOutcome",
    "IssuedLink",
    "Preview",
    "Problem",
    "SecretError",
    "TokenError",
    "TokenSigner",
    "check_secret",
]
