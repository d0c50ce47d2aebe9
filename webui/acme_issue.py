"""Certificates from an ACME CA (Let's Encrypt) with the HTTP-01 challenge.

The CA checks that ``http://<hostname>/.well-known/acme-challenge/<token>`` answers with
the key authorization; the web UI serves those answers from :class:`ChallengeStore`.
That needs port 80 of the host name to reach this web UI from the internet.

The account key is kept 0600 under ``<data_dir>/acme/``; each issue makes a fresh EC
P-256 certificate key. Blocking (network, polling): run it as a background job.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.jwk import JWKRSA

from appliance import atomicfile, config
from appliance.dns import DnsError, SyncLookup
from webui.dnscheck import published

log = logging.getLogger(__name__)

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
ACCOUNT_KEY = "account-key.pem"


class AcmeProblem(Exception):
    """Issuing failed; the text is shown to the person."""


@dataclass(frozen=True)
class AcmeSettings:
    directory: str = LETS_ENCRYPT
    # True: the system CA store; a path: a CA bundle (a private or test CA).
    verify: bool | str = True
    timeout: float = 120.0
    http_port: int = 80  # where the CA fetches challenges (webui.certcheck probes it)


class ChallengeStore:
    """Token -> key authorization, shared between the issuing job and the web views."""

    def __init__(self) -> None:
        self._items: dict[str, str] = {}
        self._lock = threading.Lock()

    def put(self, token: str, validation: str) -> None:
        with self._lock:
            self._items[token] = validation

    def get(self, token: str) -> str | None:
        with self._lock:
            return self._items.get(token)

    def remove(self, token: str) -> None:
        with self._lock:
            self._items.pop(token, None)


def _account_key(cfg: config.Config) -> JWKRSA:
    path = cfg.data_dir / "acme" / ACCOUNT_KEY
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        atomicfile.create(path, pem, mode=0o600)  # False: another process made one first
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise AcmeProblem(f"{path} is not an RSA key")
    return JWKRSA(key=loaded)


def _client(cfg: config.Config, settings: AcmeSettings, email: str) -> client.ClientV2:
    net = client.ClientNetwork(
        _account_key(cfg),
        user_agent="pillarbox",
        verify_ssl=settings.verify,  # type: ignore[arg-type]  # requests takes a CA path too
    )
    directory = client.ClientV2.get_directory(settings.directory, net)
    acme = client.ClientV2(directory, net)
    registration = messages.NewRegistration.from_data(
        email=email or None, terms_of_service_agreed=True
    )
    try:
        acme.new_account(registration)
    except errors.ConflictError as exc:  # this key already has an account: use it
        net.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
    return acme


def policy_hosts(hostname: str, domains: Iterable[str], resolver: SyncLookup) -> list[str]:
    """The ``mta-sts.<domain>`` names that already point at this box (same IPv4
    addresses as ``hostname``): those can join the certificate so the MTA-STS policy is
    served over valid HTTPS. A name that does not resolve here is left out, because one
    failing name fails the whole order."""
    try:
        ours = set(published(resolver, hostname, "A"))
    except DnsError:
        return []
    if not ours:
        return []
    names = []
    for domain in domains:
        name = f"mta-sts.{domain}"
        try:
            addrs = set(published(resolver, name, "A"))
        except DnsError:
            continue
        if addrs and addrs <= ours:
            names.append(name)
    return names


def issue(
    cfg: config.Config,
    settings: AcmeSettings,
    store: ChallengeStore,
    email: str,
    progress: Callable[[str], None],
    names: Sequence[str] = (),
) -> tuple[bytes, bytes]:
    """Obtain (fullchain PEM, private key PEM) for ``cfg.hostname`` and ``names``."""
    progress("Contacting the certificate authority…")
    try:
        acme = _client(cfg, settings, email)
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        sans = [cfg.hostname, *(n for n in names if n != cfg.hostname)]
        order = acme.new_order(crypto_util.make_csr(key_pem, sans))
        tokens: list[str] = []
        try:
            for authz in order.authorizations:
                http01 = next(
                    (c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)),
                    None,
                )
                if http01 is None:
                    raise AcmeProblem("the certificate authority offers no HTTP-01 challenge")
                response, validation = http01.chall.response_and_validation(acme.net.key)
                token = http01.chall.encode("token")
                store.put(token, str(validation))
                tokens.append(token)
                acme.answer_challenge(http01, response)
            progress(f"Waiting for the authority to check http://{cfg.hostname}/ …")
            deadline = dt.datetime.now() + dt.timedelta(seconds=settings.timeout)
            done = acme.poll_and_finalize(order, deadline=deadline)
        finally:
            for token in tokens:
                store.remove(token)
    except errors.ValidationError as exc:
        details = "; ".join(
            str(a.body.challenges[0].error or "") for a in exc.failed_authzrs if a.body.challenges
        )
        log.warning("acme=validation-failed host=%s detail=%s", cfg.hostname, details)
        raise AcmeProblem(
            f"The authority could not reach http://{cfg.hostname}/ from the internet "
            "(port 80 must lead to this box)."
        ) from None
    except errors.TimeoutError:
        raise AcmeProblem("The certificate authority did not answer in time.") from None
    except OSError as exc:  # requests' connection errors are OSErrors too
        log.warning("acme=unreachable host=%s error=%s", cfg.hostname, exc)
        raise AcmeProblem(
            "Can't reach Let's Encrypt — is the box online? Check its internet connection "
            "and that it can look up names (DNS)."
        ) from None
    except messages.Error as exc:
        log.warning("acme=refused host=%s error=%s", cfg.hostname, exc)
        detail = str(exc.detail or exc.description or "no reason given").rstrip(".")
        raise AcmeProblem(f"Let's Encrypt refused the request: {detail}.") from None
    except (errors.Error, ValueError) as exc:
        log.warning("acme=failed host=%s error=%s", cfg.hostname, exc)
        raise AcmeProblem(
            "Getting a certificate failed; the system log has the details. Try again later."
        ) from None
    log.info("acme=issued host=%s", cfg.hostname)
    return done.fullchain_pem.encode("ascii"), key_pem


def token_is_safe(token: str) -> bool:
    """RFC 8555 8.3: tokens are base64url; anything else is never looked up."""
    return 0 < len(token) <= 256 and all(c.isalnum() or c in "-_" for c in token)
