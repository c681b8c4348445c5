"""kafka_security_kwargs: what each security protocol hands to aiokafka."""

import ssl

import pytest

from schemas.exceptions import ConfigError
from schemas.settings import Settings
from streams.kafka_security import kafka_security_kwargs


def test_plaintext_adds_nothing_but_the_protocol():
    assert kafka_security_kwargs(Settings()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_verifies_the_broker_against_the_ca(tmp_path):
    from streams.localservices.tls import make_ca

    ca = make_ca(tmp_path, hosts=("127.0.0.1", "localhost"))
    kw = kafka_security_kwargs(Settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="app", kafka_sasl_password="s3cret", kafka_ssl_cafile=ca.ca_cert))
    assert kw["security_protocol"] == "SASL_SSL"
    assert (kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]) == (
        "SCRAM-SHA-256", "app", "s3cret")
    context = kw["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1


@pytest.mark.parametrize("missing", ["kafka_sasl_username", "kafka_sasl_password"])
def test_sasl_without_credentials_is_one_line(missing):
    values = {"kafka_sasl_username": "app", "kafka_sasl_password": "pw"}
    del values[missing]
    with pytest.raises(ConfigError, match="needs DRIFTLINE_KAFKA_SASL_USERNAME"):
        kafka_security_kwargs(Settings(kafka_security_protocol="SASL_PLAINTEXT", **values))


def test_unreadable_ca_is_a_config_error_without_the_password(tmp_path):
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="app",
                        kafka_sasl_password="pw-not-shown", kafka_ssl_cafile=tmp_path / "no.pem")
    with pytest.raises(ConfigError) as info:
        kafka_security_kwargs(settings)
    assert "no.pem" in str(info.value) and "pw-not-shown" not in str(info.value)
    assert "\n" not in str(info.value)


def test_half_a_client_certificate_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="both"):
        kafka_security_kwargs(Settings(kafka_security_protocol="SSL",
                                       kafka_ssl_certfile=tmp_path / "c.pem"))
