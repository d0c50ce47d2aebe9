"""DNS for the whole box: one async lookup interface with typed errors (base.py), one
dnspython adapter and its sync wrapper for the web UI (resolver.py), one bounded TTL
cache (cache.py). A bottom floor: imports nothing from the rest of ``appliance``."""

from appliance.dns.base import (
    DnsError,
    DnsTimeout,
    NoData,
    NoSuchDomain,
    RdType,
    Resolver,
    SyncLookup,
    TemporaryFailure,
    addresses,
    mx,
)
from appliance.dns.cache import DnsCache
from appliance.dns.resolver import DnsResolver, SyncResolver

__all__ = [
    "DnsCache",
    "DnsError",
    "DnsResolver",
    "DnsTimeout",
    "NoData",
    "NoSuchDomain",
    "RdType",
    "Resolver",
    "SyncLookup",
    "SyncResolver",
    "TemporaryFailure",
    "addresses",
    "mx",
]
