"""A seeded synthetic Magento 1 customer data set, shaped like customer.list and address.list.

Customers and addresses are plain dicts with the SOAP key names and decoded Python types;
null fields are left out, as `customer.list` does. The stream is drawn from one PRNG in
order, so the i-th customer is the same whatever `n` is.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from typing import Any, NamedTuple, TypeVar

_T = TypeVar("_T")

Customer = dict[str, Any]
Address = dict[str, Any]
Record = tuple[Customer, list[Address]]


class Website(NamedTuple):
    """A Magento website."""

    website_id: int
    code: str
    name: str


class Store(NamedTuple):
    """A Magento store view."""

    store_id: int
    code: str
    website_id: int
    name: str


WEBSITES: tuple[Website, ...] = (
    Website(0, "admin", "Admin"),
    Website(1, "base", "Main Website"),
    Website(2, "eu", "EU Website"),
)
STORES: tuple[Store, ...] = (
    Store(0, "admin", 0, "Admin"),
    Store(1, "default", 1, "Default Store View"),
    Store(2, "eu_en", 2, "EU English"),
)
# As the recorded store answered customer_group.list (unicode and markup characters included).
GROUPS: tuple[dict[str, Any], ...] = (
    {"customer_group_id": 0, "customer_group_code": "NOT LOGGED IN"},
    {"customer_group_id": 1, "customer_group_code": "General"},
    {"customer_group_id": 2, "customer_group_code": "Wholesale"},
    {"customer_group_id": 3, "customer_group_code": "Retailer"},
    {"customer_group_id": 4, "customer_group_code": "VIP Ünïcode Kunden"},
    {"customer_group_id": 5, "customer_group_code": "B2B Partners"},
    {"customer_group_id": 6, "customer_group_code": "Staff & Friends <test>"},
)
WEBSITE_CODES: dict[int, str] = {w.website_id: w.code for w in WEBSITES}
STORE_CODES: dict[int, str] = {s.store_id: s.code for s in STORES}

# Base stream timestamps fall in [BASE_START, BASE_END]; the changed variant's edits and
# additions fall in [CHANGED_START, CHANGED_END], so a cursor at BASE_END sees exactly them.
BASE_START = "2010-01-01 00:00:00"
BASE_END = "2026-06-30 23:59:59"
CHANGED_START = "2026-07-01 00:00:00"
CHANGED_END = "2026-07-07 23:59:59"

_EPOCH = date(2010, 1, 1)
_DAY = 86_400
_BASE_SPAN = ((date(2026, 6, 30) - _EPOCH).days + 1) * _DAY - 1
_CHANGED_FROM = _BASE_SPAN + 1
_CHANGED_SPAN = 7 * _DAY - 1

# Formatting from precomputed pieces is ~10x cheaper than strftime per value.
_DAYS = [str(_EPOCH + timedelta(days=d)) for d in range((date(2027, 1, 1) - _EPOCH).days)]
_TIMES = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(_DAY)]
_DOBS = [
    f"{date(1940, 1, 1) + timedelta(days=d)} 00:00:00"
    for d in range((date(2008, 12, 31) - date(1940, 1, 1)).days + 1)
]


def format_ts(seconds: int) -> str:
    """Format seconds since 2010-01-01 00:00:00 UTC as 'YYYY-MM-DD HH:MM:SS'."""
    return f"{_DAYS[seconds // _DAY]} {_TIMES[seconds % _DAY]}"


_ASCII_FIRST = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark",
    "Margaret", "Paul", "Sandra", "Steven", "Ashley", "Andrew", "Emily", "Peter", "Anna", "Lukas",
    "Sophie", "Jan", "Emma", "Pieter", "Julia", "Hans", "Laura", "Pierre", "Claire", "Lucas",
    "Marie", "Carlos", "Elena", "Tom", "Eva",
)
_ASCII_LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson",
    "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Hall", "Young",
    "King", "Wright", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Dubois", "Moreau", "Laurent", "Jansen", "DeVries", "Bakker", "Visser", "Smit", "O'Connor",
    "Smith-Jones", "McDonald", "Fernandez", "Gomez", "Ruiz",
)
# (firstname, lastname, ascii slug for the e-mail address)
_UNICODE_NAMES = (
    ("José", "Müller", "jose.mueller"),
    ("Zoë", "Łukasiewicz", "zoe.lukasiewicz"),
    ("芳", "王", "fang.wang"),
    ("太郎", "山田", "taro.yamada"),
    ("小龍", "李", "xiaolong.li"),
    ("민준", "김", "minjun.kim"),
    ("Αλέξανδρος", "Παπαδόπουλος", "alexandros.papadopoulos"),
    ("Дмитрий", "Шостакович", "dmitry.shostakovich"),
    ("François", "Ñúñez", "francois.nunez"),
    ("Åsa", "Ødegård", "asa.odegard"),
    ("محمد", "العلي", "mohammed.alali"),
    ("Søren", "Kierkegaard", "soren.kierkegaard"),
    ("Siobhán", "O'Brien-Señor", "siobhan.obrien-senor"),
    ("Jürgen", "Weiß", "juergen.weiss"),
    ("Björk", "Guðmundsdóttir", "bjork.gudmundsdottir"),
    ("İlkay", "Gündoğan", "ilkay.gundogan"),
    ("Ólafur", "Þórsson", "olafur.thorsson"),
    ("Chloë", "Brontë", "chloe.bronte"),
    ("Ñandú", "García", "nandu.garcia"),
    ("An", "Nguyễn Văn", "an.nguyen"),
)
_DOMAINS = ("example.com",) * 4 + ("example.org", "example.net", "mail.example.com")
_TAGS = ("shop", "news", "promo", "2019", "magento")
_PREFIXES = ("Mr.", "Mrs.", "Ms.", "Dr.", "Prof.")
_MIDDLES = ("M.", "J.", "Ann", "Lee", "María", "Дмитриевич")
_SUFFIXES = ("Jr.", "Sr.", "III", "PhD")
_SALT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_GROUP_IDS = (1, 1, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6)
_ADDRESS_COUNTS = (0,) * 2 + (1,) * 5 + (2,) * 6 + (3,) * 7  # 10/25/30/35 %, mean 1.9


class _Place(NamedTuple):
    country_id: str
    city: str
    region: str | None
    region_id: int | None
    postcodes: tuple[str, ...]
    phone: str
    streets: tuple[str, ...]
    number_first: bool


_US_STREETS = ("Main Street", "Oak Avenue", "Maple Drive", "Broadway", "Elm Street")
_DE_STREETS = ("Hauptstraße", "Bahnhofstraße", "Schloßallee", "Gartenweg", "Lindenstraße")
# Region ids are Magento 1's directory_country_region ids; GB, NL, PL and JP have none.
_PLACES = (
    _Place("US", "New York", "New York", 43, ("10001", "10013", "10025"), "+1 212",
           _US_STREETS, True),
    _Place("US", "Los Angeles", "California", 12, ("90001", "90012"), "+1 213", _US_STREETS, True),
    _Place("US", "Hartford", "Connecticut", 14, ("06103", "06612", "06106"), "+1 860",
           _US_STREETS, True),
    _Place("US", "Boston", "Massachusetts", 32, ("02108", "02116"), "+1 617", _US_STREETS, True),
    _Place("GB", "London", None, None, ("SW1A 1AA", "EC1A 1BB", "N1 9GU"), "+44 20",
           ("High Street", "Station Road", "Church Lane", "Baker Street"), True),
    _Place("GB", "Manchester", None, None, ("M1 1AE", "M4 5JD"), "+44 161",
           ("Deansgate", "Oxford Road"), True),
    _Place("DE", "Berlin", "Berlin", 82, ("10115", "10719", "13353"), "+49 30", _DE_STREETS, False),
    _Place("DE", "München", "Bayern", 81, ("80331", "81675"), "+49 89", _DE_STREETS, False),
    _Place("DE", "Dresden", "Sachsen", 91, ("01067", "01307"), "+49 351", _DE_STREETS, False),
    _Place("DE", "Köln", "Nordrhein-Westfalen", 88, ("50667", "50933"), "+49 221",
           _DE_STREETS, False),
    _Place("AT", "Wien", "Wien", 95, ("1010", "1070"), "+43 1", ("Mariahilfer Straße",), False),
    _Place("FR", "Paris", "Paris", 257, ("75001", "75011"), "+33 1",
           ("Rue de Rivoli", "Avenue des Champs-Élysées"), True),
    _Place("FR", "Nice", "Alpes-Maritimes", 187, ("06000", "06300"), "+33 4",
           ("Promenade des Anglais", "Rue de France"), True),
    _Place("NL", "Amsterdam", None, None, ("1012 AB", "1017 CE"), "+31 20",
           ("Keizersgracht", "Damrak", "Prinsengracht"), False),
    _Place("NL", "Rotterdam", None, None, ("3011 AA",), "+31 10", ("Coolsingel",), False),
    _Place("ES", "Madrid", "Madrid", 161, ("28001", "28013"), "+34 91",
           ("Calle Mayor", "Gran Vía"), False),
    _Place("ES", "Barcelona", "Barcelona", 139, ("08001", "08002"), "+34 93",
           ("Carrer de Balmes", "La Rambla"), False),
    _Place("PL", "Łódź", "Łódzkie", None, ("90-001", "91-002"), "+48 42",
           ("ulica Piotrkowska",), False),
    _Place("JP", "東京", "東京都", None, ("100-0001",), "+81 3", ("丸の内 1-1",), True),
)
_EU = frozenset({"AT", "DE", "ES", "FR", "NL", "PL"})
_STREET_LINE2 = ("Apt 3", "Suite 200", "Hinterhaus, 3. OG links", "c/o Zoë", "Building B, Floor 2")
_COMPANIES = (
    "ACME GmbH & Co. KG",
    "Smith, Jones & Partners LLP",
    "Müller & Söhne",
    "Dupont, Durand et Fils",
    "Globex Corporation",
    'Café "Zur Post" GmbH',
    "O'Reilly & Sons, Ltd.",
    "株式会社テスト",
)


class _Generator:
    """Draws customers one after another from one PRNG; holds the running ids."""

    def __init__(self, seed: int, start_id: int, first_address_id: int) -> None:
        self.rng = random.Random(seed)
        self.next_id = start_id
        self.next_address_id = first_address_id
        self._salts = ["".join(self.rng.choices(_SALT_CHARS, k=32)) for _ in range(1024)]
        # The previous customer, if its e-mail may be reused on the other website.
        self._prev: tuple[str, int, str, str] | None = None

    def next(self, window: tuple[int, int] = (0, _BASE_SPAN)) -> Record:
        """Draw the next customer and its addresses; window is (start, span) in seconds."""
        r = self.rng.random
        cid = self.next_id
        self.next_id += 1
        created = window[0] + int(r() * window[1])
        updated = created if r() < 0.3 else created + int(r() * (window[0] + window[1] - created))
        first, last, email, website = self._identity(cid)
        addresses = self._addresses(first, last, created, window[0] + window[1])
        # Each website has one store view, with the website's id (as on the recorded store).
        c: Customer = {"customer_id": cid, "created_at": format_ts(created),
                       "updated_at": format_ts(updated), "store_id": website,
                       "website_id": website, "created_in": STORES[website].name}
        if r() < 0.10:
            c["prefix"] = _pick(r, _PREFIXES)
        c["firstname"] = first
        if r() < 0.08:
            c["middlename"] = _pick(r, _MIDDLES)
        c["lastname"] = last + " " if r() < 0.003 else last  # stray spaces occur in real data
        if r() < 0.04:
            c["suffix"] = _pick(r, _SUFFIXES)
        c["email"] = email
        c["group_id"] = _pick(r, _GROUP_IDS)
        if r() < 0.7:
            c["dob"] = _pick(r, _DOBS)
        self._secrets(c)
        self._defaults(c, addresses)
        if r() < 0.10:
            c["taxvat"] = f"DE{int(r() * 1e9):09d}"
        if r() < 0.05:
            c["confirmation"] = f"{self.rng.getrandbits(128):032x}"
        if r() < 0.8:
            c["gender"] = 1 if r() < 0.45 else 2
        c["disable_auto_group_change"] = 1 if r() < 0.03 else 0
        return c, addresses

    def _identity(self, cid: int) -> tuple[str, str, str, int]:
        """Names, e-mail and website; about 5% reuse the previous e-mail on the other site."""
        r = self.rng.random
        prev = self._prev
        if prev is not None and r() < 0.05:
            self._prev = None  # an e-mail is shared by two websites at most
            return prev[2], prev[3], prev[0], 3 - prev[1]
        if r() < 0.10:
            first, last, slug = _pick(r, _UNICODE_NAMES)
        else:
            first, last = _pick(r, _ASCII_FIRST), _pick(r, _ASCII_LAST)
            slug = f"{first}.{last}".lower().replace("'", "")
        local = f"{slug}{cid}"
        if r() < 0.05:
            local += "+" + _pick(r, _TAGS)
        domain = _pick(r, _DOMAINS)
        email = f"{local}@{domain}"
        if r() < 0.02:  # mixed case, as customers type it
            email = f"{local.title()}@{domain.capitalize().replace('.com', '.COM')}"
        website = 1 if r() < 0.7 else 2
        self._prev = (email, website, first, last)
        return first, last, email, website

    def _secrets(self, c: Customer) -> None:
        """Set password_hash: sha256:salt32 mostly, legacy md5:salt2 sometimes."""
        r = self.rng.random
        if r() < 0.15:
            return
        if r() < 0.8:
            c["password_hash"] = f"{self.rng.getrandbits(256):064x}:{_pick(r, self._salts)}"
        else:
            c["password_hash"] = f"{self.rng.getrandbits(128):032x}:{_pick(r, self._salts)[:2]}"

    def _defaults(self, c: Customer, addresses: list[Address]) -> None:
        """Pick default billing and shipping addresses and flag them on the addresses."""
        if not addresses:
            return
        r = self.rng.random
        billing = _pick(r, addresses) if r() < 0.85 else None
        roll = r()
        shipping = billing if roll < 0.7 else _pick(r, addresses) if roll < 0.9 else None
        if billing is not None:
            c["default_billing"] = billing["customer_address_id"]
            billing["is_default_billing"] = True
        if shipping is not None:
            c["default_shipping"] = shipping["customer_address_id"]
            shipping["is_default_shipping"] = True

    def _addresses(self, first: str, last: str, created: int, until: int) -> list[Address]:
        """Draw 0 to 3 addresses created after the customer."""
        r = self.rng.random
        out = []
        for _ in range(_pick(r, _ADDRESS_COUNTS)):
            aid = self.next_address_id
            self.next_address_id += 1
            a_created = created + int(r() * min(30 * _DAY, until - created))
            a_updated = a_created if r() < 0.6 else a_created + int(r() * (until - a_created))
            a: Address = {"customer_address_id": aid, "created_at": format_ts(a_created),
                          "updated_at": format_ts(a_updated)}
            self._address_body(a, first, last)
            a["is_default_billing"] = False
            a["is_default_shipping"] = False
            out.append(a)
        return out

    def _address_body(self, a: Address, first: str, last: str) -> None:
        """Fill names, street, place, phone and the optional address fields."""
        r = self.rng.random
        if r() < 0.15:  # shipped to someone else
            first, last = _pick(r, _ASCII_FIRST), _pick(r, _ASCII_LAST)
        if r() < 0.05:
            a["prefix"] = _pick(r, _PREFIXES)
        a["firstname"] = first
        if r() < 0.03:
            a["middlename"] = _pick(r, _MIDDLES)
        a["lastname"] = last
        if r() < 0.02:
            a["suffix"] = _pick(r, _SUFFIXES)
        if r() < 0.15:
            a["company"] = _pick(r, _COMPANIES)
        place = _pick(r, _PLACES)
        number, name = 1 + int(r() * 250), _pick(r, place.streets)
        street = f"{number} {name}" if place.number_first else f"{name} {number}"
        if r() < 0.2:
            street += "\n" + _pick(r, _STREET_LINE2)
        a["street"] = street
        a["city"] = " " + place.city if r() < 0.003 else place.city
        a["country_id"] = place.country_id
        if place.region is not None:
            a["region"] = place.region
        if place.region_id is not None:
            a["region_id"] = place.region_id
        a["postcode"] = _pick(r, place.postcodes)
        a["telephone"] = f"{place.phone} {1_000_000 + int(r() * 9_000_000)}"
        if r() < 0.08:
            a["fax"] = f"{place.phone} {1_000_000 + int(r() * 9_000_000)}"
        if place.country_id in _EU and r() < 0.10:
            a["vat_id"] = f"{place.country_id}{int(r() * 1e9):09d}"


def _pick(r: Callable[[], float], pool: Sequence[_T]) -> _T:
    """Pick from a sequence with a random() function (faster than Random.choice)."""
    return pool[int(r() * len(pool))]


def _first_address_id(start_id: int) -> int:
    """Address ids for a stream starting at start_id, clear of any earlier stream's."""
    return 3 * (start_id - 1) + 1


def iter_customers(n: int, seed: int = 42, start_id: int = 1) -> Iterator[Record]:
    """Yield n (customer, addresses) pairs, the i-th the same whatever n is."""
    gen = _Generator(seed, start_id, _first_address_id(start_id))
    for _ in range(n):
        yield gen.next()


def mutate_customer(customer: Customer, rng: random.Random, updated_at: str) -> Customer:
    """Return a copy with a name, e-mail or dob changed and updated_at set."""
    c = dict(customer)
    kind = rng.randrange(4)
    if kind == 0:
        c["firstname"] = rng.choice([n for n in _ASCII_FIRST if n != c["firstname"]])
    elif kind == 1:
        c["lastname"] = rng.choice([n for n in _ASCII_LAST if n != c["lastname"]])
    elif kind == 2:
        # The customer id in the local part keeps the new address unique per website.
        local, domain = c["email"].rsplit("@", 1)
        c["email"] = f"{local}.{c['customer_id']}new@{domain}"
    else:
        dob = c.get("dob")
        while dob == c.get("dob"):
            dob = rng.choice(_DOBS)
        c["dob"] = dob
    c["updated_at"] = updated_at
    return c


def mutate_address(address: Address, rng: random.Random, updated_at: str) -> Address:
    """Return a copy with the street, telephone or postcode changed and updated_at set."""
    a = dict(address)
    kind = rng.randrange(3)
    if kind == 0:
        a["street"] = f"{rng.randrange(251, 999)} New Road"
    elif kind == 1:
        a["telephone"] = f"+49 30 {rng.randrange(1_000_000, 9_999_999)}"
    else:
        a["postcode"] = f"{rng.randrange(1, 99_999):05d}"  # leading zeros included
    a["updated_at"] = updated_at
    return a


def iter_customers_changed(
    n: int,
    seed: int = 42,
    change_ratio: float = 0.01,
    delete_ratio: float = 0.002,
    add_ratio: float = 0.002,
    *,
    start_id: int = 1,
) -> Iterator[Record]:
    """Yield iter_customers(n, seed) with edits, deletions and new customers appended."""
    gen = _Generator(seed, start_id, _first_address_id(start_id))
    # A second PRNG decides the edits, so the base stream is drawn exactly as unchanged.
    rng = random.Random(seed * 7919 + 1)

    def when() -> str:
        return format_ts(_CHANGED_FROM + int(rng.random() * _CHANGED_SPAN))

    for _ in range(n):
        customer, addresses = gen.next()
        roll = rng.random()
        if roll < delete_ratio:
            continue
        if roll < delete_ratio + change_ratio:
            customer = mutate_customer(customer, rng, when())
        addresses = [
            mutate_address(a, rng, when()) if rng.random() < change_ratio else a
            for a in addresses
        ]
        yield customer, addresses
    for _ in range(round(n * add_ratio)):
        yield gen.next(window=(_CHANGED_FROM, _CHANGED_SPAN))
