"""Passkeys: an approval that only the person's device can make (WebAuthn).

``binding`` (pure: the challenge an approval is bound to, whose person an actor is),
``credentials`` (the enrolled keys), ``service`` (enroll, revoke, check an assertion),
``routes`` (the enrollment page and the approval page's options), ``cli`` (``person`` verbs).
Kept import-light: ``authorize`` imports ``binding`` without pulling the rest in.
"""
