"""One person's journey through the window: the records each source captures and the events
each channel sends, in the order a real customer would produce them.

Identifiers arrive progressively: anonymous visits with a cookie, then a sign-up that ties the
cookie to an e-mail and a user id, later an app (device id), a loyalty card at a store (card
number, phone), calls from a phone, a CRM row. Marketing touches cause purchases: each touch
may, with the probability in :data:`EFFECTS`, schedule an order in the hours that follow, so
attribution has a real signal to recover.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from omnicdp.synth import geo
from omnicdp.synth.catalog import AD_CAMPAIGNS, Campaign, Catalog
from omnicdp.synth.events import APP_SOURCES, ORDER_COMPLETED, EventLog
from omnicdp.synth.noise import noisy_email
from omnicdp.synth.people import IdFactory, Person, Phone, landline
from omnicdp.synth.records import (
    SourceRecord,
    app_record,
    call_center_record,
    crm_record,
    email_list_record,
    loyalty_record,
    phone_style,
    pos_record,
    web_record,
)
from omnicdp.synth.timeline import (
    DAY,
    HOUR,
    LONG_AGO,
    browsing_time,
    latest,
    poisson,
    within_hours,
)

SITE = "https://www.uyut-home.ru"

# touch -> ((purchase kind, probability, earliest hours after, latest hours after), ...).
# Probabilities are scaled by the person's responsiveness. "store" purchases are moved into
# opening hours; "online" orders happen on the site or in the app, "app" ones in the app.
EFFECTS: dict[str, tuple[tuple[str, float, float, float], ...]] = {
    "Email Opened": (("store", 0.07, 1, 44), ("online", 0.03, 0.2, 72)),
    "Email Clicked": (("online", 0.12, 0.05, 24),),
    "Push Opened": (("app", 0.08, 0.05, 24),),
    "SMS Sent": (("store", 0.025, 1, 72),),
    "Message Read": (("store", 0.04, 1, 48),),
    "Ad Impression": (("store", 0.004, 1, 24), ("online", 0.004, 0.5, 48)),
    "Ad Clicked": (("online", 0.06, 0.05, 48),),
}
# Touches whose campaign the order carries (a tracked link).
# How often a cashier types the store's own number for a customer who gives none.
STORE_PHONE_SHARE = 0.06
_CLICK_TOUCHES = ("Email Clicked", "Push Opened", "Ad Clicked")
_CALL_REASONS = ("delivery_status", "return", "product_question", "complaint", "assembly")
_PAGES = ("/", "/catalog/sofas", "/catalog/kitchen", "/catalog/textiles", "/catalog/lighting",
          "/sale", "/catalog/storage")
_SCREENS = ("Home", "Catalog", "Search", "Favourites")


@dataclass
class World:
    """Everything journeys share: the random stream, catalogue, campaign calendar, and what
    they produce."""

    rng: random.Random
    ids: IdFactory
    catalog: Catalog
    calendar: dict[str, list[Campaign]]
    log: EventLog
    window: int  # seconds
    records: list[SourceRecord] = field(default_factory=list)
    orders_online: int = 0
    purchases_store: int = 0
    store_phones: dict[str, Phone] = field(default_factory=dict)

    def store_phone(self, store_id: str, city: geo.City) -> Phone:
        """The store's own landline, which cashiers type when a customer gives no number."""
        phone = self.store_phones.get(store_id)
        if phone is None:
            phone = self.store_phones[store_id] = landline(self.rng, self.ids, city)
        return phone


class Journey:
    """Simulates one person: call :meth:`run` once; records and events land in the world."""

    def __init__(self, person: Person, world: World) -> None:
        self.p = person
        self.w = world
        self.rng = world.rng
        self.emit = world.log.emit
        self.cookies: list[tuple[int, str]] = []  # (first used, anonymous_id), oldest first
        self.esp_emails: list[tuple[int, str]] = []  # (from, address the ESP mails)
        self.sms_phone: str | None = None
        self.purchases: list[tuple[int, str, str | None]] = []  # (time, kind, campaign)
        city = person.address.city if person.country == "RU" else None
        slug = city.latin[0].lower().replace(" ", "-").replace(".", "") if city else "moscow"
        self.store_id = f"store-{slug}-{self.rng.randint(1, 4)}"
        self.store_city = city or geo.RU_CITIES[0]
        self.captured = 0  # source records of this person so far
        self.app_source = APP_SOURCES[person.platform]

    def run(self) -> None:
        p = self.p
        if p.first_visit_t is not None:
            self.cookies.append((p.first_visit_t, self.w.ids.uuid()))
        elif p.signup_t is not None:
            self.cookies.append((LONG_AGO, self.w.ids.uuid()))  # an existing customer
        if p.signup_t is not None:
            self._sign_up(p.signup_t)
        if p.newsletter_t is not None:
            self._subscribe(p.newsletter_t)
        if p.app_t is not None:
            self._install_app(p.app_t)
        if p.loyalty_t is not None:
            self._join_loyalty()
        if p.crm_t is not None:
            self._crm(p.crm_t)
        for t in p.call_times:
            self._call(t)
        self._browse()
        self._email_campaigns()
        self._push_campaigns()
        self._sms_campaigns()
        self._messenger_campaigns()
        self._ads()
        self._baseline_purchases()
        for t, kind, campaign in self.purchases:
            if kind == "store":
                self._store_purchase(t)
            else:
                self._online_order(t, kind, campaign)

    # Milestones: each leaves a source record and, inside the window, an identify

    def _sign_up(self, t: int) -> None:
        p, log = self.p, self.w.log
        record = self._keep(web_record(p, t, self.rng))
        cookie = self._cookie_at(t)
        self.emit(p.person_id, t - self.rng.randrange(30, 300), "page", "web",
                  {"anonymous_id": cookie}, properties=_page("/register"))
        log.identify_from_record(record, "web", extra={"anonymous_id": cookie})
        self.emit(p.person_id, t + 2, "track", "web",
                  {"anonymous_id": cookie, "user_id": p.user_id}, event="Signed Up",
                  properties={"method": "email"})

    def _subscribe(self, t: int) -> None:
        p, rng = self.p, self.rng
        esp_email = noisy_email(p.email_at(t), rng, p_typo=0.0, p_upper=0.05)
        self.esp_emails.append((t, esp_email))
        for since, address in p.emails[1:]:
            if since > t and rng.random() < 0.6:  # the customer updates the subscription
                self.esp_emails.append((since + rng.randrange(DAY, 10 * DAY), address))
        if p.footer_subscriber:
            record = self._keep(email_list_record(p, t, esp_email, rng))
            cookie = self._cookie_at(t)
            self.w.log.identify_from_record(record, "web", extra={"anonymous_id": cookie},
                                            source="website")
            self.emit(p.person_id, t + 1, "track", "web",
                      {"anonymous_id": cookie, "email": esp_email}, event="Signed Up",
                      properties={"program": "newsletter"})
        elif not p.one_off and rng.random() < 0.5:  # the ESP's subscriber export
            self._keep(email_list_record(p, t, esp_email, rng))

    def _install_app(self, t: int) -> None:
        p = self.p
        record = self._keep(app_record(p, t, self.rng))
        self.emit(p.person_id, t - self.rng.randrange(60, 600), "track", "app",
                  {"device_id": p.device_id}, event="App Installed", source=self.app_source,
                  properties={"platform": p.platform})
        self.w.log.identify_from_record(record, "app", extra={"device_id": p.device_id},
                                        source=self.app_source)
        if self.rng.random() < 0.5:
            self.emit(p.person_id, t + 1, "alias", "app",
                      {"device_id": p.device_id, "user_id": p.user_id}, source=self.app_source)

    def _join_loyalty(self) -> None:
        p, rng = self.p, self.rng
        assert p.loyalty_t is not None
        if p.loyalty_t >= 0:
            p.loyalty_t = self._store_time(p.loyalty_t)
        t = p.loyalty_t
        phone = p.phone_at_till(rng, 0.35, t)
        self.sms_phone = phone.formatted("e164")
        if rng.random() < STORE_PHONE_SHARE:
            phone = self._store_phone()
        record = self._keep(loyalty_record(p, t, phone, rng))
        self.w.log.identify_from_record(record, "store")
        self.emit(p.person_id, t + 5, "track", "store", {"loyalty_id": p.loyalty_id},
                  event="Signed Up", properties={"program": "loyalty", "store_id": self.store_id})
        self.purchases.append((t + rng.randrange(120, 900), "store", None))

    def _crm(self, t: int) -> None:
        for i, crm_id in enumerate(self.p.crm_ids):
            when = t + i * self.rng.randrange(DAY, 30 * DAY)
            record = self._keep(crm_record(self.p, when, crm_id, self.rng))
            self.w.log.identify_from_record(record, "crm")

    def _call(self, t: int) -> None:
        p, rng = self.p, self.rng
        t = within_hours(t, 5, 18, rng)
        caller = p.phone_at_till(rng, 0.4, t).formatted(phone_style("call_center", rng))
        crm_id = None
        if p.crm_t is not None and p.crm_t <= t and rng.random() < 0.4:
            crm_id = p.crm_ids[0]
        if rng.random() < 0.5:
            record = self._keep(call_center_record(p, t, caller, crm_id, rng))
            self.w.log.identify_from_record(record, "call_center")
        duration = int(rng.lognormvariate(5.3, 0.6))
        self.emit(p.person_id, t + duration, "track", "call_center",
                  {"phone": caller, "crm_id": crm_id or ""}, event="Call Completed",
                  properties={"reason": rng.choice(_CALL_REASONS), "duration_sec": duration})

    # Browsing

    def _browse(self) -> None:
        p, rng, window = self.p, self.rng, self.w.window
        if p.signup_t is not None and p.first_visit_t is not None:
            # anonymous visits before signing up, all with the first cookie
            times = [p.first_visit_t] + [rng.randrange(p.first_visit_t, max(p.signup_t, 1))
                                         for _ in range(poisson(rng, 1.5))]
            for t in sorted(browsing_time(t, rng) for t in times):
                if t < p.signup_t - 600:
                    self._web_session(t, self.cookies[0][1], None)
        if p.signup_t is None and p.first_visit_t is not None:
            start = p.first_visit_t
            count = poisson(rng, p.visit_rate * (window - start) / DAY)
            times = sorted([start] + [rng.randrange(start, window) for _ in range(count)])
            for i, t in enumerate(times):
                if i and rng.random() < 0.2:  # cookies cleared, another browser
                    self.cookies.append((t, self.w.ids.uuid()))
                self._web_session(browsing_time(t, rng), self._cookie_at(t), None)
        if p.signup_t is not None:
            start = max(0, p.signup_t + 600)
            count = poisson(rng, p.visit_rate * max(0, window - start) / DAY)
            for t in sorted(rng.randrange(start, window) for _ in range(count)):
                t = browsing_time(t, rng)
                if p.app_t is not None and p.app_t <= t and rng.random() < 0.5:
                    self._app_session(t, None)
                else:
                    cookie, user_id = self._signed_up_visit(t)
                    self._web_session(t, cookie, user_id)

    def _signed_up_visit(self, t: int) -> tuple[str, str | None]:
        """The cookie of a signed-up person's visit, and the user id if logged in. A new
        browser starts anonymous and joins the account only if the person logs in."""
        p, rng = self.p, self.rng
        if rng.random() < 0.12 and len(self.cookies) < 4:
            cookie = self.w.ids.uuid()
            self.cookies.append((t, cookie))
            if rng.random() < 0.5:
                return cookie, None
            self.emit(p.person_id, t - 5, "identify", "web",
                      {"anonymous_id": cookie, "user_id": p.user_id, "email": p.email_at(t)},
                      traits={"first_name": p.latin_first if rng.random() < 0.4
                              else p.first_name})
            return cookie, p.user_id
        return self._cookie_at(t), p.user_id

    def _web_session(self, t: int, cookie: str, user_id: str | None,
                     campaign: str | None = None, path: str | None = None) -> int:
        rng, pid = self.rng, self.p.person_id
        identifiers = {"anonymous_id": cookie}
        if user_id:
            identifiers["user_id"] = user_id
        properties = _page(path or rng.choice(_PAGES))
        if campaign:
            properties["campaign"] = campaign
        self.emit(pid, t, "page", "web", identifiers, properties=properties)
        for _ in range(1 + poisson(rng, 1.0)):
            t += rng.randrange(20, 240)
            product = self.w.catalog.as_properties(self.w.catalog.pick(rng))
            self.emit(pid, t, "track", "web", identifiers, event="Product Viewed",
                      properties=product)
            if rng.random() < 0.12:
                t += rng.randrange(10, 60)
                self.emit(pid, t, "track", "web", identifiers, event="Product Added",
                          properties=product | {"quantity": 1})
        return t

    def _app_session(self, t: int, campaign: str | None) -> int:
        rng, pid = self.rng, self.p.person_id
        identifiers = {"device_id": self.p.device_id, "user_id": self.p.user_id}
        properties: dict[str, object] = {"screen": rng.choice(_SCREENS)}
        if campaign:
            properties["campaign"] = campaign
        self.emit(pid, t, "screen", "app", identifiers, source=self.app_source,
                  properties=properties)
        for _ in range(1 + poisson(rng, 0.8)):
            t += rng.randrange(15, 180)
            product = self.w.catalog.as_properties(self.w.catalog.pick(rng))
            self.emit(pid, t, "track", "app", identifiers, event="Product Viewed",
                      source=self.app_source, properties=product)
        return t

    def _landing(self, t: int, campaign: str, path: str) -> None:
        """The visit a click opens: the app if the person uses it, otherwise the site."""
        p = self.p
        if p.signup_t is not None and p.signup_t <= t:
            self._web_session(t, self._cookie_at(t), p.user_id, campaign, path)
        elif self.cookies:
            self._web_session(t, self._cookie_at(t), None, campaign, path)

    # Marketing touches

    def _email_campaigns(self) -> None:
        if not self.esp_emails:
            return
        p, rng, pid = self.p, self.rng, self.p.person_id
        for campaign in self.w.calendar["email"]:
            if campaign.t < self.esp_emails[0][0]:
                continue
            address = latest(self.esp_emails, campaign.t)
            ids = {"email": address}
            props = {"campaign": campaign.name}
            t = campaign.t + rng.randrange(0, 1800)
            self.emit(pid, t, "track", "email", ids, event="Email Sent", properties=props)
            if rng.random() >= p.open_p:
                continue
            t += int(rng.expovariate(1 / (5 * HOUR))) + 60
            if not self._touch(t, "Email Opened", "email", ids, campaign.name):
                continue
            if rng.random() < p.click_p:
                t += rng.randrange(5, 600)
                if self._touch(t, "Email Clicked", "email", ids, campaign.name):
                    self._landing(t + 3, campaign.name, "/sale")

    def _push_campaigns(self) -> None:
        p, rng = self.p, self.rng
        if not p.push_opt_in or p.app_t is None:
            return
        ids = {"device_id": p.device_id}
        for campaign in self.w.calendar["push"]:
            if campaign.t < p.app_t:
                continue
            props = {"campaign": campaign.name}
            t = campaign.t + rng.randrange(0, 600)
            self.emit(p.person_id, t, "track", "push", ids, event="Push Sent", properties=props)
            if rng.random() < p.push_open_p:
                t += int(rng.expovariate(1 / HOUR)) + 30
                if self._touch(t, "Push Opened", "push", ids, campaign.name):
                    self._app_session(t + 2, campaign.name)

    def _sms_campaigns(self) -> None:
        p = self.p
        if not p.sms_opt_in or self.sms_phone is None or p.loyalty_t is None:
            return
        for campaign in self.w.calendar["sms"]:
            if campaign.t >= p.loyalty_t:
                t = campaign.t + self.rng.randrange(0, 900)
                self._touch(t, "SMS Sent", "sms", {"phone": self.sms_phone}, campaign.name)

    def _messenger_campaigns(self) -> None:
        p, rng = self.p, self.rng
        if not p.messenger:
            return
        known = [t for t in (p.loyalty_t, p.crm_t) if t is not None]
        ids = {"phone": self.sms_phone or p.mobile_at(min(known)).formatted("e164")}
        for campaign in self.w.calendar["messenger"]:
            if campaign.t < min(known):
                continue
            props = {"campaign": campaign.name}
            t = campaign.t + rng.randrange(0, 900)
            self.emit(p.person_id, t, "track", "messenger", ids, event="Message Sent",
                      properties=props)
            if rng.random() < 0.6:
                self._touch(t + int(rng.expovariate(1 / (2 * HOUR))), "Message Read",
                            "messenger", ids, campaign.name)

    def _ads(self) -> None:
        p, rng = self.p, self.rng
        if p.ad_rate <= 0 or not self.cookies:
            return
        start = max(0, self.cookies[0][0])
        for _ in range(poisson(rng, p.ad_rate * (self.w.window - start) / DAY)):
            t = rng.randrange(start, self.w.window)
            in_app = p.app_t is not None and p.app_t <= t and rng.random() < 0.3
            ids = {"device_id": p.device_id} if in_app else {"anonymous_id": self._cookie_at(t)}
            campaign = rng.choice(AD_CAMPAIGNS)
            placement = rng.choice(("search", "social", "display", "video"))
            if not self._touch(t, "Ad Impression", "ads", ids, campaign,
                               {"placement": placement}):
                continue
            if rng.random() < 0.04:
                t += rng.randrange(2, 60)
                if self._touch(t, "Ad Clicked", "ads", ids, campaign, {"placement": placement}):
                    if in_app:
                        self._app_session(t + 2, campaign)
                    else:
                        self._landing(t + 2, campaign, "/sale")

    def _touch(self, t: int, event: str, channel: str, identifiers: dict[str, str],
               campaign: str, extra: dict[str, object] | None = None) -> bool:
        """Emit a marketing touch and let it cause purchases (see :data:`EFFECTS`)."""
        properties: dict[str, object] = {"campaign": campaign}
        if extra:
            properties.update(extra)
        if not self.emit(self.p.person_id, t, "track", channel, identifiers, event=event,
                         properties=properties):
            return False
        rng = self.rng
        for kind, probability, earliest, last in EFFECTS[event]:
            if rng.random() >= probability * self.p.responsiveness:
                continue
            if kind == "store" and not self.p.store_shopper and rng.random() >= 0.15:
                continue
            when = t + int(rng.uniform(earliest, last) * HOUR)
            self.purchases.append((when, kind, campaign if event in _CLICK_TOUCHES else None))
        return True

    # Purchases

    def _baseline_purchases(self) -> None:
        p, rng, window = self.p, self.rng, self.w.window
        if p.online_rate > 0 and p.signup_t is not None:
            start = max(0, p.signup_t)
            for _ in range(poisson(rng, p.online_rate * (window - start) / DAY)):
                self.purchases.append((browsing_time(rng.randrange(start, window), rng), "online",
                                       None))
        if p.store_rate > 0:
            start = p.loyalty_t if p.loyalty_t is not None and p.loyalty_t > 0 else 0
            for _ in range(poisson(rng, p.store_rate * (window - start) / DAY)):
                self.purchases.append((rng.randrange(start, window), "store", None))

    def _online_order(self, t: int, kind: str, campaign: str | None) -> None:
        p, rng, pid = self.p, self.rng, self.p.person_id
        if p.signup_t is None or t < p.signup_t:
            return  # not a customer of the site (yet)
        in_app = p.app_t is not None and p.app_t <= t and (kind == "app" or rng.random() < 0.4)
        items, revenue = self.w.catalog.basket(rng)
        if in_app:
            channel, source = "app", self.app_source
            ids = {"user_id": p.user_id, "device_id": p.device_id}
        else:
            channel, source = "web", "website"
            ids = {"user_id": p.user_id, "email": p.email_at(t),
                   "anonymous_id": self._cookie_at(t)}
        before = t - rng.randrange(300, 1500)
        for item in items:
            before += rng.randrange(20, 120)
            self.emit(pid, before, "track", channel, ids, event="Product Added", source=source,
                      properties=item)
        properties: dict[str, object] = {
            "order_id": self.w.ids.digits(9, prefix="APP-" if in_app else "WEB-"),
            "revenue": revenue, "currency": "RUB", "products": items}
        if campaign:
            properties["campaign"] = campaign
        if self.emit(pid, t, "track", channel, ids, event=ORDER_COMPLETED, source=source,
                     properties=properties):
            self.w.orders_online += 1

    def _store_purchase(self, t: int) -> None:
        p, rng = self.p, self.rng
        t = self._store_time(t)
        has_card = p.loyalty_t is not None and p.loyalty_t <= t
        ids: dict[str, str] = {}
        if has_card and rng.random() < 0.9:
            ids["loyalty_id"] = p.loyalty_id
        if not ids or rng.random() < 0.4:
            phone = p.phone_at_till(rng, 0.3, t)
            if rng.random() < STORE_PHONE_SHARE:
                phone = self._store_phone()
            ids["phone"] = phone.formatted(phone_style("pos", rng))
        if 0 <= t < self.w.window and rng.random() < 0.2 and not (p.one_off and self.captured):
            # details typed for a delivery
            record = self._keep(pos_record(p, t - 60, has_card, self._store_phone(), rng))
            self.w.log.identify_from_record(record, "store")
        items, revenue = self.w.catalog.basket(rng)
        properties = {"order_id": self.w.ids.digits(9, prefix="POS-"), "revenue": revenue,
                      "currency": "RUB", "store_id": self.store_id, "products": items}
        if self.emit(p.person_id, t, "track", "store", ids, event=ORDER_COMPLETED,
                     properties=properties):
            self.w.purchases_store += 1

    def _keep(self, record: SourceRecord) -> SourceRecord:
        self.w.records.append(record)
        self.captured += 1
        return record

    def _store_phone(self) -> Phone:
        return self.w.store_phone(self.store_id, self.store_city)

    # Time helpers

    def _cookie_at(self, t: int) -> str:
        return latest(self.cookies, t)

    def _store_time(self, t: int) -> int:
        """``t`` moved into opening hours, 10:00-22:00 Moscow time (07-19 UTC)."""
        return within_hours(t, 7, 19, self.rng)


def _page(path: str) -> dict[str, object]:
    return {"path": path, "url": SITE + path}
