"""Deterministic synthetic demo data: users, tweets, clients and events, with personal data planted.

Same arguments, same dataset, byte for byte: every random choice comes from one seeded
`random.Random` and seeded Faker instances, and time comes from `anchor`, never the clock.
About 30% of tweets carry personal data in the forms people really type; each planted item is
recorded (`DemoTweet.planted_pii`) so redaction tests can check that every one is gone.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from faker import Faker

DEFAULT_ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR")
PII_KINDS = ("email", "phone", "card", "ip", "iban", "ssn", "secret")
PRIVACY_LEVELS = ("standard", "gdpr", "hipaa")
FREQUENCIES = ("hourly", "daily", "weekly")
EVENT_TYPES = ("page_view", "page_view", "page_view", "click", "click", "signup", "purchase", "form_submit")
# Twitter's snowflake epoch (2010-11-04T01:42:54.657Z), so ids sort like real ones.
_TWEPOCH_MS = 1288834974657
_POOL = 200


@dataclass(frozen=True)
class DemoTweet:
    tweet_id: str
    created_at: datetime
    text: str
    lang: str
    retweet_count: int
    favorite_count: int
    hashtags: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    planted_pii: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DemoUser:
    user_id: str
    twitter_user_id: str
    handle: str
    display_name: str
    email: str
    tier: str
    created_at: datetime
    tweets: tuple[DemoTweet, ...] = field(default=())


@dataclass(frozen=True)
class DemoClient:
    client_id: str
    name: str
    privacy_level: str
    sync_frequency: str
    format: str
    bucket: str
    prefix: str


@dataclass(frozen=True)
class DemoEvent:
    client_id: str
    event_type: str
    ip_address: str
    user_agent: str
    url: str
    payload: str
    consent_analytics: bool
    consent_marketing: bool
    created_at: datetime
    defect: str | None = None


@dataclass(frozen=True)
class DemoDataset:
    seed: int
    anchor: datetime
    users: tuple[DemoUser, ...]
    clients: tuple[DemoClient, ...]
    events: tuple[DemoEvent, ...]

    def fingerprint(self) -> str:
        """SHA-256 of a canonical JSON form: equal fingerprints, equal datasets."""
        canonical = json.dumps(asdict(self), sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class _Pools:
    """Values drawn once from seeded Faker instances; sampling from them with the seeded Random
    keeps generation fast (Faker per event would take minutes for 100k events)."""

    def __init__(self, seed: int):
        fakers = {}
        for i, locale in enumerate(LOCALES):
            fake = Faker(locale)
            fake.seed_instance(seed * 31 + i)
            fakers[locale] = fake
        us, gb, de, fr = (fakers[loc] for loc in LOCALES)
        self.names = [fakers[LOCALES[i % 4]].name() for i in range(_POOL)]
        self.first_names = [fakers[LOCALES[i % 4]].first_name() for i in range(_POOL)]
        self.emails = [fakers[LOCALES[i % 4]].free_email() for i in range(_POOL)]
        self.domains = [us.free_email_domain() for _ in range(20)]
        self.phones = [us.numerify("+1415555####") for _ in range(40)]
        self.phones += [us.numerify("(###) 555-####") for _ in range(20)]
        self.phones += [us.numerify("###.555.####") for _ in range(20)]
        self.phones += [gb.numerify("+44 20 7946 0###") for _ in range(20)]
        self.phones += [gb.numerify("07700 900###") for _ in range(20)]
        self.phones += [de.numerify("+49 30 1234####") for _ in range(20)]
        self.phones += [de.numerify("030 123####") for _ in range(20)]
        self.phones += [fr.numerify("+33 1 ## ## ## ##") for _ in range(20)]
        self.phones += [fr.numerify("06 ## ## ## ##") for _ in range(20)]
        self.cards = [us.credit_card_number(card_type=t) for t in ("visa16", "mastercard", "amex") for _ in range(20)]
        self.ibans = [fakers[loc].iban() for loc in ("de_DE", "fr_FR", "en_GB") for _ in range(20)]
        self.ssns = [us.ssn() for _ in range(40)]
        self.ipv4 = [us.ipv4_public() for _ in range(_POOL)]
        self.ipv6 = [us.ipv6() for _ in range(50)]
        self.user_agents = [us.user_agent() for _ in range(50)]
        self.words = [w for w in us.words(nb=400, unique=True) if w.isalpha()]
        self.companies = [us.company() for _ in range(30)]
        self.sentences = [us.sentence(nb_words=8) for _ in range(_POOL)]
        self.uri_paths = [us.uri_path() for _ in range(60)]
        self.hex = us.hexify


_TOPICS = (
    "Launch day for {word} v{ver} — so proud of the team! #{tag}",
    "Anyone else watching the {word} game tonight? 3-1 at half time #{tag}",
    "Just paid ${price} for {word} coffee beans, worth it. {link}",
    "Meeting moved to {date} at {time}, see you there @{mention}",
    "$AAPL and ${cash} up {pct}% today, wild market #{tag}",
    "Reading about {word} and {word2}: {link}",
    "Order #{order} finally arrived after {num} days. #{tag}",
    "Thanks @{mention} for the {word} tips, game changer",
    "Upgraded to {ver} and everything broke again #{tag}",
    "{sentence} #{tag}",
)

_PII_TEMPLATES = {
    "email": ("DM me or write to {value} for the {word} details", "new address: {value}, update your contacts"),
    "phone": ("call me on {value} if you want the {word} tickets", "text {value} after {time}, thanks!"),
    "card": ("ugh paid with {value} and got charged twice", "is {value} still valid? asking for a friend"),
    "ip": ("my server at {value} keeps timing out #{tag}", "who else gets blocked from {value}?"),
    "iban": ("send the {word} money to {value} please", "IBAN {value} for the group gift"),
    "ssn": ("the form asked for my SSN {value} really??", "typed {value} into the wrong field lol"),
    "secret": ("oops pasted {value} in the chat", "config says {value} do not share"),
}


def _obfuscated_email(rng: random.Random, pools: _Pools) -> str:
    first = rng.choice(pools.first_names).lower().replace(" ", "")
    domain = rng.choice(pools.domains)
    name, tld = domain.rsplit(".", 1)
    return rng.choice(
        (
            f"{first} dot {rng.choice(pools.words)} at {name} dot {tld}",
            f"{first}[at]{domain}",
            f"{first} (at) {name} (dot) {tld}",
        )
    )


def _secret(rng: random.Random, pools: _Pools) -> str:
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

    def rand(n: int, alphabet: str = alnum) -> str:
        return "".join(rng.choice(alphabet) for _ in range(n))

    return rng.choice(
        (
            f"sk-ant-api03-{rand(40)}",
            f"AKIA{rand(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}",
            f"ghp_{rand(36)}",
            f"xoxb-{rand(11, '0123456789')}-{rand(12, '0123456789')}-{rand(24)}",
            f"password: {rand(10)}",
        )
    )


def _pii_value(kind: str, rng: random.Random, pools: _Pools) -> str:
    if kind == "email":
        return rng.choice(pools.emails) if rng.random() < 0.6 else _obfuscated_email(rng, pools)
    if kind == "phone":
        return rng.choice(pools.phones)
    if kind == "card":
        card = rng.choice(pools.cards)
        sep = rng.choice(("", " ", "-"))
        return sep.join(card[i : i + 4] for i in range(0, len(card), 4)) if sep else card
    if kind == "ip":
        return rng.choice(pools.ipv4) if rng.random() < 0.7 else rng.choice(pools.ipv6)
    if kind == "iban":
        iban = rng.choice(pools.ibans)
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.5 else iban
    if kind == "ssn":
        return rng.choice(pools.ssns)
    return _secret(rng, pools)


def _public_text(rng: random.Random, pools: _Pools, when: datetime, handles: list[str]) -> tuple[str, dict]:
    tag = rng.choice(pools.words).capitalize()
    mention = rng.choice(handles)
    link = f"https://t.co/{''.join(rng.choice('abcdefghijkmnpqrstuvwxyzABCDEFGH23456789') for _ in range(10))}"
    template = rng.choice(_TOPICS)
    values = {
        "word": rng.choice(pools.words),
        "word2": rng.choice(pools.words),
        "ver": f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}",
        "tag": tag,
        "price": f"{rng.randint(3, 90)}.{rng.randint(0, 99):02d}",
        "link": link,
        "date": (when + timedelta(days=rng.randint(1, 20))).strftime("%Y-%m-%d"),
        "time": f"{rng.randint(8, 19)}:{rng.choice(('00', '15', '30', '45'))}",
        "mention": mention,
        "cash": rng.choice(("TSLA", "MSFT", "NVDA", "AMZN")),
        "pct": f"{rng.randint(1, 12)}.{rng.randint(0, 9)}",
        "order": str(rng.randint(10000, 99999)),
        "num": str(rng.randint(2, 30)),
        "sentence": rng.choice(pools.sentences),
    }
    text = template.format(**values)
    return text, {"tag": tag if f"#{tag}" in text else None, "mention": mention if f"@{mention}" in text else None,
                  "link": link if link in text else None, "cash": "AAPL" if "$AAPL" in text else None}


def _snowflake(when: datetime, seq: int) -> str:
    ms = int(when.timestamp() * 1000) - _TWEPOCH_MS
    return str((ms << 22) | (seq & 0x3FFFFF))


def _tweets(rng: random.Random, pools: _Pools, count: int, anchor: datetime, handles: list[str], seq: list[int]):
    span = 7 * 24 * 3600
    moments = sorted(anchor - timedelta(seconds=rng.randint(60, span)) for _ in range(count))
    tweets = []
    for when in moments:
        text, parts = _public_text(rng, pools, when, handles)
        planted: tuple[tuple[str, str], ...] = ()
        if rng.random() < 0.3:
            kind = rng.choice(PII_KINDS)
            value = _pii_value(kind, rng, pools)
            extra = rng.choice(_PII_TEMPLATES[kind]).format(
                value=value, word=rng.choice(pools.words), time=_afternoon(rng), tag=rng.choice(pools.words)
            )
            text = f"{extra} {text}" if rng.random() < 0.5 else f"{text} {extra}"
            planted = ((kind, value),)
        if len(text) > 280:  # keep the planted item, drop the public filler
            text, parts = extra, {"tag": None, "mention": None, "link": None}
        seq[0] += 1
        tweets.append(
            DemoTweet(
                tweet_id=_snowflake(when, seq[0]),
                created_at=when,
                text=text,
                lang="en",
                retweet_count=int(rng.expovariate(0.3)),
                favorite_count=int(rng.expovariate(0.1)),
                hashtags=tuple(x for x in (parts["tag"],) if x),
                mentions=tuple(x for x in (parts["mention"],) if x),
                urls=tuple(x for x in (parts["link"],) if x),
                planted_pii=planted,
            )
        )
    return tuple(tweets)


def _afternoon(rng: random.Random) -> str:
    return f"{rng.randint(1, 11)}:{rng.choice(('00', '30'))}pm"


def _users(rng: random.Random, pools: _Pools, count: int, per_user: int, anchor: datetime) -> tuple[DemoUser, ...]:
    handles = [f"{rng.choice(pools.words)}_{rng.choice(pools.words)}{rng.randint(1, 99)}"[:15] for _ in range(count)]
    others = [f"{w}{rng.randint(1, 999)}" for w in rng.sample(pools.words, 20)]
    seq = [0]
    users = []
    for i in range(count):
        name = pools.names[i % len(pools.names)]
        users.append(
            DemoUser(
                user_id=f"demo-user-{i + 1:03d}",
                twitter_user_id=str(1_400_000_000_000_000_000 + rng.randint(10**12, 10**15)),
                handle=handles[i],
                display_name=name,
                email=pools.emails[i % len(pools.emails)],
                # Alternate tiers so both Claude routes (basic -> Sonnet, pro -> Opus) have users.
                tier=("basic", "pro")[i % 2],
                created_at=anchor - timedelta(days=30 + rng.randint(0, 300)),
                tweets=_tweets(rng, pools, per_user, anchor, [h for h in handles if h != handles[i]] + others, seq),
            )
        )
    return tuple(users)


def _clients(rng: random.Random, pools: _Pools, count: int) -> tuple[DemoClient, ...]:
    clients = []
    for i in range(count):
        level = PRIVACY_LEVELS[i % 3]
        suffix = level if i < 3 else f"{level}-{i + 1}"
        clients.append(
            DemoClient(
                client_id=f"demo-client-{suffix}",
                name=pools.companies[i % len(pools.companies)],
                privacy_level=level,
                sync_frequency=FREQUENCIES[i % 3],
                format=("parquet", "jsonl")[i % 2],
                bucket=f"demo-client-{suffix}-bucket",
                prefix=f"repazoo/{suffix}/",
            )
        )
    return tuple(clients)


def _payload(rng: random.Random, pools: _Pools, event_type: str) -> dict:
    payload: dict = {"session": pools.hex("^^^^^^^^^^^^^^^^"), "path": rng.choice(pools.uri_paths)}
    if event_type in ("signup", "form_submit", "purchase"):
        payload["user"] = {"name": rng.choice(pools.names), "email": rng.choice(pools.emails)}
        if rng.random() < 0.5:
            payload["user"]["phone"] = rng.choice(pools.phones)
        payload["message"] = f"{rng.choice(pools.sentences)} Reach me at {rng.choice(pools.emails)}"
    if event_type == "purchase":
        payload["amount"] = round(rng.uniform(5, 500), 2)
        payload["currency"] = rng.choice(("USD", "EUR", "GBP"))
    if event_type == "click":
        payload["element"] = rng.choice(("cta", "nav", "footer-link", "signup-button"))
    return payload


def _events(rng: random.Random, pools: _Pools, count: int, clients, anchor: datetime) -> tuple[DemoEvent, ...]:
    span = 7 * 24 * 3600
    moments = sorted(anchor - timedelta(seconds=rng.randint(1, span)) for _ in range(count))
    # ~1% deliberately malformed, each defect kind at least once when there is room for it.
    defect_slots = rng.sample(range(count), max(3, count // 100)) if count >= 3 else []
    defects = {slot: ("payload_not_json", "unknown_client", "missing_event_type")[n % 3] for n, slot in enumerate(defect_slots)}
    events = []
    for i, when in enumerate(moments):
        client = rng.choice(clients)
        event_type = rng.choice(EVENT_TYPES)
        ip = rng.choice(pools.ipv4) if rng.random() < 0.85 else rng.choice(pools.ipv6)
        url = f"https://{client.client_id}.example.com/{rng.choice(pools.uri_paths).lstrip('/')}"
        if rng.random() < 0.3:
            url += f"?email={rng.choice(pools.emails)}&utm_source={rng.choice(pools.words)}"
        payload = json.dumps(_payload(rng, pools, event_type), sort_keys=True)
        defect = defects.get(i)
        client_id = client.client_id
        if defect == "payload_not_json":
            payload = payload[: len(payload) // 2]
        elif defect == "unknown_client":
            client_id = f"unknown-client-{rng.randint(1, 99)}"
        elif defect == "missing_event_type":
            event_type = ""
        events.append(
            DemoEvent(
                client_id=client_id,
                event_type=event_type,
                ip_address=ip,
                user_agent=rng.choice(pools.user_agents),
                url=url,
                payload=payload,
                consent_analytics=rng.random() < 0.9,
                consent_marketing=rng.random() < 0.5,
                created_at=when,
                defect=defect,
            )
        )
    return tuple(events)


def generate_dataset(
    seed: int = 42,
    *,
    users: int = 5,
    clients: int = 3,
    tweets_per_user: int = 40,
    events: int = 2000,
    anchor: datetime | None = None,
) -> DemoDataset:
    """Build the demo dataset; tweets and events fall in the 7 days before `anchor`."""
    for name, value, minimum in (("users", users, 1), ("clients", clients, 3), ("tweets_per_user", tweets_per_user, 1), ("events", events, 1)):
        if not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    anchor = DEFAULT_ANCHOR if anchor is None else anchor
    if anchor.tzinfo is None:
        raise ValueError("anchor must be timezone-aware (UTC)")
    anchor = anchor.astimezone(UTC)
    rng = random.Random(seed)
    pools = _Pools(seed)
    demo_users = _users(rng, pools, users, tweets_per_user, anchor)
    demo_clients = _clients(rng, pools, clients)
    return DemoDataset(seed, anchor, demo_users, demo_clients, _events(rng, pools, events, demo_clients, anchor))
