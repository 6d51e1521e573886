"""The contract's vocabulary (PRODUCT.md): event types, channels, identifier names."""

from __future__ import annotations

EVENT_TYPES = ("identify", "track", "page", "screen", "alias", "group")
CHANNELS = ("web", "app", "email", "push", "sms", "messenger", "ads", "store", "call_center",
            "crm")
# Priority order: the first is the most trusted.
IDENTIFIER_TYPES = ("user_id", "crm_id", "loyalty_id", "email", "phone", "device_id",
                    "anonymous_id")
TRAIT_FIELDS = ("first_name", "last_name", "date_of_birth", "address_line", "city", "postcode",
                "region", "country")
MAX_BATCH_EVENTS = 500
MAX_EVENT_BYTES = 32 * 1024
