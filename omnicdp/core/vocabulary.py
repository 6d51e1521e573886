"""The contract's vocabulary (PRODUCT.md): event types, channels, identifier names, limits.

The one definition in Python. The protos carry the same names as enum values
(``IDENTIFIER_TYPE_CRM_ID`` is ``crm_id``) and ``Identifiers`` fields; a test keeps the two
equal. What only Python knows lives here too: the identifiers' priority order.
"""

from __future__ import annotations

EVENT_TYPES: tuple[str, ...] = ("identify", "track", "page", "screen", "alias", "group")
CHANNELS: tuple[str, ...] = ("web", "app", "email", "push", "sms", "messenger", "ads", "store",
                             "call_center", "crm")
#: Identifier types, highest priority first: the priority decides which customer anchors a
#: record that matches several, and the order identifiers are listed in.
IDENTIFIER_TYPES: tuple[str, ...] = ("user_id", "crm_id", "loyalty_id", "email", "phone",
                                     "device_id", "anonymous_id")
PRIORITY: dict[str, int] = {id_type: rank for rank, id_type in enumerate(IDENTIFIER_TYPES)}
TRAIT_FIELDS: tuple[str, ...] = ("first_name", "last_name", "date_of_birth", "address_line",
                                 "city", "postcode", "region", "country")
#: Purposes a customer consents to (or not), per channel or for every channel.
CONSENT_PURPOSES: tuple[str, ...] = ("marketing_email", "sms", "push", "personalisation",
                                     "ad_platform_transfer")
CONSENT_STATUSES: tuple[str, ...] = ("granted", "denied", "withdrawn")
#: GDPR article 6(1)'s lawful bases (152-FZ asks for consent as a separate, provable act).
LEGAL_BASES: tuple[str, ...] = ("consent", "contract", "legal_obligation", "vital_interests",
                                "public_task", "legitimate_interests")
#: The track event partners send a consent decision as (properties: purpose, channel,
#: status, legal_basis, proof_reference).
CONSENT_EVENT = "Consent Updated"

MAX_IDENTIFIER_LENGTH = 256
MAX_BATCH_EVENTS = 500
MAX_EVENT_BYTES = 32 * 1024
MAX_BODY_BYTES = 500 * 1024
