"""Kafka client security from :class:`Settings`: one set of keyword arguments for every
aiokafka consumer, producer and admin client Driftline makes.

Spread it into the constructor: ``AIOKafkaConsumer(..., **kafka_security_kwargs(settings))``.

>>> kafka_security_kwargs(Settings())
{'security_protocol': 'PLAINTEXT'}
>>> kw = kafka_security_kwargs(Settings(kafka_security_protocol="SASL_PLAINTEXT",
...                                     kafka_sasl_username="app", kafka_sasl_password="pw"))
>>> kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]
('SCRAM-SHA-512', 'app', 'pw')
"""

from typing import Any

from aiokafka.helpers import create_ssl_context

from schemas.exceptions import ConfigError
from schemas.settings import Settings


def kafka_security_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka's ``security_protocol``, ``sasl_*`` and ``ssl_context`` arguments.

    SSL and SASL_SSL get an :class:`ssl.SSLContext` that verifies the broker's certificate
    and host name against ``DRIFTLINE_KAFKA_SSL_CAFILE`` (the system CAs when unset) and
    presents ``DRIFTLINE_KAFKA_SSL_CERTFILE``/``KEYFILE`` when both are set. The password is
    the only secret in the result; never log it.

    Raises:
        ConfigError: SASL without a user name or password, half a client certificate, or a
            certificate file that cannot be read (one line, no secret in it).
    """
    protocol = settings.kafka_security_protocol
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        if not settings.kafka_sasl_username or password is None:
            raise ConfigError(f"DRIFTLINE_KAFKA_SECURITY_PROTOCOL={protocol} needs "
                              "DRIFTLINE_KAFKA_SASL_USERNAME and DRIFTLINE_KAFKA_SASL_PASSWORD")
        kwargs.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                      sasl_plain_username=settings.kafka_sasl_username,
                      sasl_plain_password=password.get_secret_value())
    if protocol.endswith("SSL"):
        certfile, keyfile = settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile
        if (certfile is None) != (keyfile is None):
            raise ConfigError("set both DRIFTLINE_KAFKA_SSL_CERTFILE and "
                              "DRIFTLINE_KAFKA_SSL_KEYFILE, or neither")
        try:
            kwargs["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile,
                                                       certfile=certfile, keyfile=keyfile)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ConfigError(f"Kafka TLS files ({settings.kafka_ssl_cafile}, {certfile}, "
                              f"{keyfile}) cannot be used: {exc.__class__.__name__}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    return kwargs


def faust_credentials(settings: Settings) -> Any:
    """The same security for Faust's own consumer and producer (the incidents agent and
    table): a ``faust.SASLCredentials`` / ``faust.SSLCredentials``, or None for PLAINTEXT.
    Faust turns these back into exactly :func:`kafka_security_kwargs` for aiokafka.

    >>> faust_credentials(Settings()) is None
    True
    >>> faust_credentials(Settings(kafka_security_protocol="SASL_PLAINTEXT",
    ...     kafka_sasl_username="app", kafka_sasl_password="pw")).mechanism.value
    'SCRAM-SHA-512'
    """
    import faust

    kwargs = kafka_security_kwargs(settings)
    protocol = kwargs["security_protocol"]
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(kwargs["ssl_context"])
    return faust.SASLCredentials(username=kwargs["sasl_plain_username"],
                                 password=kwargs["sasl_plain_password"],
                                 ssl_context=kwargs.get("ssl_context"),
                                 mechanism=kwargs["sasl_mechanism"])
