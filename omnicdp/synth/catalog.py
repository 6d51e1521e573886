"""What the retailer sells and when it runs campaigns.

A home-goods retailer: many cheap items (textiles, kitchenware, decor) and a few expensive
ones (sofas, beds), so that basket values come out right-skewed, roughly lognormal, with a
median of a few thousand roubles.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from omnicdp.synth.timeline import DAY

# (category, Russian product kinds, median price in RUB, spread of log price)
_CATEGORIES = (
    ("sofas", ("Диван угловой", "Диван-кровать", "Кресло"), 45_000, 0.45),
    ("beds", ("Кровать двуспальная", "Матрас", "Кровать детская"), 28_000, 0.5),
    ("storage", ("Шкаф-купе", "Комод", "Стеллаж"), 12_000, 0.6),
    ("tables", ("Стол обеденный", "Стол письменный", "Журнальный столик"), 9_000, 0.55),
    ("chairs", ("Стул", "Табурет", "Кресло офисное"), 3_500, 0.5),
    ("lighting", ("Лампа настольная", "Торшер", "Люстра"), 2_800, 0.6),
    ("textiles", ("Плед", "Комплект постельного белья", "Полотенце", "Подушка"), 1_400, 0.6),
    ("kitchen", ("Сковорода", "Набор посуды", "Кастрюля", "Чайник"), 1_600, 0.6),
    ("decor", ("Ваза", "Рамка для фото", "Свеча ароматическая", "Зеркало"), 900, 0.7),
)
_CATEGORY_WEIGHTS = (2, 2, 3, 3, 5, 6, 12, 10, 10)
_MODELS = ("Осло", "Берген", "Милан", "Лофт", "Сканди", "Прованс", "Вена", "Турин", "Лира",
           "Норд")
_THEMES = ("winter_sale", "new_collection", "weekend_deals", "loyalty_bonus", "free_delivery",
           "spring_sale", "kitchen_week", "sofa_days", "home_textiles", "summer_sale")


@dataclass(frozen=True, slots=True)
class Product:
    product_id: str
    sku: str
    name: str
    category: str
    price: float


@dataclass(frozen=True, slots=True)
class Campaign:
    name: str
    channel: str  # email | push | sms | messenger
    t: int  # send time, seconds from the window start


class Catalog:
    def __init__(self, rng: random.Random, size_per_category: int = 8) -> None:
        self.products: list[Product] = []
        self.weights: list[float] = []
        number = 10_000
        for (category, kinds, median, spread), weight in zip(_CATEGORIES, _CATEGORY_WEIGHTS,
                                                             strict=True):
            for _ in range(size_per_category):
                number += rng.randrange(1, 40)
                price = round(median * rng.lognormvariate(0, spread), -1) - 1
                name = f"{rng.choice(kinds)} {rng.choice(_MODELS)}"
                self.products.append(Product(f"prod_{number}", f"SKU-{number}", name, category,
                                             max(price, 99.0)))
                self.weights.append(weight)

    def basket(self, rng: random.Random) -> tuple[list[dict[str, object]], float]:
        """The products of one order as EVENT properties, and the order's revenue."""
        count = rng.choices((1, 2, 3, 4), weights=(55, 28, 12, 5))[0]
        items = []
        revenue = 0.0
        for product in rng.choices(self.products, weights=self.weights, k=count):
            quantity = 2 if product.price < 2000 and rng.random() < 0.2 else 1
            revenue += product.price * quantity
            items.append(self.as_properties(product) | {"quantity": quantity})
        return items, round(revenue, 2)

    def pick(self, rng: random.Random) -> Product:
        return rng.choices(self.products, weights=self.weights)[0]

    @staticmethod
    def as_properties(product: Product) -> dict[str, object]:
        return {"product_id": product.product_id, "sku": product.sku, "name": product.name,
                "category": product.category, "price": product.price}


def campaign_calendar(rng: random.Random, start: date, days: int) -> dict[str, list[Campaign]]:
    """Scheduled sends per channel: e-mail weekly, push weekly, SMS and messenger fortnightly.
    Sends go out in the morning, Moscow time."""
    every = {"email": 7, "push": 7, "sms": 14, "messenger": 14}
    calendar: dict[str, list[Campaign]] = {}
    for channel, period in every.items():
        sends = []
        day = rng.randrange(period)
        while day < days:
            t = day * DAY + rng.randrange(5, 9) * 3600 + rng.randrange(4) * 900
            sent_on = (start + timedelta(days=day)).strftime("%Y%m%d")
            sends.append(Campaign(f"{channel}_{sent_on}_{rng.choice(_THEMES)}", channel, t))
            day += period + rng.choice((-1, 0, 0, 1))
        calendar[channel] = sends
    return calendar


AD_CAMPAIGNS = ("ads_retargeting_cart", "ads_brand_search", "ads_display_new_collection",
                "ads_social_sofa_days", "ads_video_home")
